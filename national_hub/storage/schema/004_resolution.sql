-- National identity resolution (docs/design.md §5): the identity fields matching needs beside
-- the record columns, each live record's blocking keys, and the review queue whose
-- decided rows are the human decisions the resolver never overrides.

ALTER TABLE records
    ADD COLUMN other_given_names   text,
    ADD COLUMN former_family_names text[],
    ADD COLUMN address_line        text;

-- Blocking keys of every live record, replaced in the batch's transaction.
CREATE TABLE record_keys (
    council_code  text NOT NULL,
    local_id      text NOT NULL,
    key           text NOT NULL,
    PRIMARY KEY (council_code, local_id, key)
);
CREATE INDEX record_keys_key ON record_keys (key);

-- One row per pair of records ever put to a person, the pair in a fixed order.
-- open: awaiting a decision; linked / separated: decided, and sticky.
CREATE TABLE review_queue (
    id            bigserial PRIMARY KEY,
    council_a     text NOT NULL,
    local_id_a    text NOT NULL,
    council_b     text NOT NULL,
    local_id_b    text NOT NULL,
    score         double precision NOT NULL,
    explanation   jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'linked', 'separated')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_by    text,
    decided_at    timestamptz,
    CHECK ((council_a, local_id_a) < (council_b, local_id_b)),
    UNIQUE (council_a, local_id_a, council_b, local_id_b)
);
CREATE INDEX review_queue_b ON review_queue (council_b, local_id_b);
CREATE INDEX review_queue_open ON review_queue (created_at) WHERE status = 'open';
