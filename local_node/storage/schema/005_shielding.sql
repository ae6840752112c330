-- Shielding belongs to the child, not to one record (docs/design.md §6, protocol.disclosure):
-- every child found related to a shielded one — merged with it (either way), in the
-- review list with it (whatever the decision), or sharing a valid NHS number or UPN
-- with it — is marked here, and a mark is never removed by the node's own jobs:
-- archiving or purging the shielded record does not lift it from the others.
-- ``via`` is the shielded record it was learnt from (kept after that one is purged).

CREATE TABLE shield_marks (
    local_id   text PRIMARY KEY REFERENCES children (local_id),
    via        text NOT NULL,
    noted_at   timestamptz NOT NULL DEFAULT now()
);

-- The relations are walked from the shielded children outwards, by index.
CREATE INDEX children_merged_into ON children (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX review_items_candidate ON review_items (candidate_id);
CREATE INDEX source_records_nhs ON source_records ((identity ->> 'nhs_number'))
    WHERE identity ->> 'nhs_number' IS NOT NULL;
CREATE INDEX source_records_upn ON source_records ((identity ->> 'upn'))
    WHERE identity ->> 'upn' IS NOT NULL;

-- Children related to a shielded one before this version: marked now (the same walk
-- as local_node.storage.shielding.ShieldStore.refresh, which every ingest runs).
WITH RECURSIVE reach(local_id, via) AS (
    SELECT local_id, local_id FROM children WHERE shielded
  UNION
    SELECT n.local_id, r.via FROM reach r CROSS JOIN LATERAL (
    SELECT c.merged_into AS local_id FROM children c
     WHERE c.local_id = r.local_id AND c.merged_into IS NOT NULL
    UNION ALL SELECT c.local_id FROM children c WHERE c.merged_into = r.local_id
    UNION ALL SELECT i.candidate_id FROM review_items i WHERE i.local_id = r.local_id
    UNION ALL SELECT i.local_id FROM review_items i WHERE i.candidate_id = r.local_id
    UNION ALL SELECT o.local_id FROM (
        SELECT c.nhs_number AS nhs, c.upn AS upn FROM children c
         WHERE c.local_id = r.local_id
        UNION ALL SELECT s.identity ->> 'nhs_number', s.identity ->> 'upn'
          FROM source_records s WHERE s.local_id = r.local_id
    ) mine CROSS JOIN LATERAL (
        SELECT c.local_id FROM children c WHERE c.nhs_number = mine.nhs
        UNION ALL SELECT c.local_id FROM children c WHERE c.upn = mine.upn
        UNION ALL SELECT s.local_id FROM source_records s
         WHERE s.identity ->> 'nhs_number' = mine.nhs
        UNION ALL SELECT s.local_id FROM source_records s WHERE s.identity ->> 'upn' = mine.upn
    ) o
) n
)
INSERT INTO shield_marks (local_id, via)
SELECT DISTINCT ON (local_id) local_id, via FROM reach ORDER BY local_id, via;
