-- Shielding belongs to the child (docs/design.md §6): one sticky mark per record that counts
-- as shielded and per council whose shielded record made it so (whose index team to
-- contact). A record is marked for its own flag and for every record it is linked to,
-- in review with, separated from, shares a valid NHS number or UPN with, or was merged
-- with, transitively. Marks are never removed by the hub's own jobs: archiving or
-- purging the shielded record leaves its relations shielded.
CREATE TABLE shield_marks (
    council_code       text NOT NULL,
    local_id           text NOT NULL,
    shielding_council  text NOT NULL,
    reason             text NOT NULL,  -- own | linked | review | same_identifier
    marked_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (council_code, local_id, shielding_council)
);

-- The records shielded by their own council's flag: few, found without a scan.
CREATE INDEX records_shielded ON records (council_code, local_id) WHERE shielded;


-- Every record shielded now is marked for itself; ``national-hub links shield`` then
-- carries the marks to every related record (run once after this upgrade).
INSERT INTO shield_marks (council_code, local_id, shielding_council, reason)
SELECT council_code, local_id, council_code, 'own' FROM records WHERE shielded
ON CONFLICT DO NOTHING;
