-- Local matching: blocking keys of every child (candidates are found by key, never
-- all pairs), the review list of uncertain pairs the index team decides, and
-- children absorbed into another by a merge (kept, pointing at the survivor).

ALTER TABLE children ADD COLUMN merged_into text REFERENCES children (local_id);

CREATE TABLE child_blocking_keys (
    key       text NOT NULL,
    local_id  text NOT NULL REFERENCES children (local_id),
    PRIMARY KEY (key, local_id)
);
CREATE INDEX child_blocking_keys_child ON child_blocking_keys (local_id);

CREATE TABLE review_items (
    id            bigserial PRIMARY KEY,
    local_id      text NOT NULL REFERENCES children (local_id),  -- the newer child
    candidate_id  text NOT NULL REFERENCES children (local_id),  -- the child it may be
    score         double precision NOT NULL,
    explanation   jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'rejected',
                                                                 'obsolete')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    decided_by    text,
    UNIQUE (local_id, candidate_id)
);
CREATE INDEX review_items_open ON review_items (id) WHERE status = 'open';
