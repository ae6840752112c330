-- Local matching models estimated from the council's own records (`local-node model
-- train`): u by random sampling of source rows, m by EM on candidate pairs. Ingest
-- uses the newest; older versions stay, so a placement or a review naming one can be
-- traced. ``children`` is the size of the index when it was trained: a bulk load that
-- grows the index by more than half retrains (docs/feeds.md).

CREATE TABLE match_models (
    version     text PRIMARY KEY,
    parameters  jsonb NOT NULL,      -- protocol.matching.Model.to_dict()
    trained_at  timestamptz NOT NULL DEFAULT now(),
    children    bigint NOT NULL,
    summary     jsonb NOT NULL       -- what training saw, and how the pairs decide
);
CREATE INDEX match_models_trained_at ON match_models (trained_at);

-- Which model placed each source row with its child by probabilistic matching (linked
-- to a child, or a new child because no candidate linked); NULL when a rule placed it
-- (its own earlier row, an NHS number or UPN, the exact name and date of birth).
ALTER TABLE source_records ADD COLUMN model_version text;
-- Which model sent each pair to the review list.
ALTER TABLE review_items ADD COLUMN model_version text;

-- Blocking keys are derived data: recomputed from the child, written only by
-- ChildStore in the transaction that writes the child, and deleted with it by a merge
-- and by a purge. Their foreign key checked every (key, child) pair one by one, ten
-- per child: a fifth of a feed's load (docs/feeds.md).
ALTER TABLE child_blocking_keys DROP CONSTRAINT child_blocking_keys_local_id_fkey;
