-- Resolution off the batch path (docs/design.md §10): batch intake writes a record and its
-- blocking keys and queues the record here in the batch's transaction; the background
-- resolver claims the oldest entries, resolves them set-based and deletes them in one
-- transaction. Append-only (no unique key), so intake never waits on a row the
-- resolver holds; a record queued twice is resolved once with its newest fields.
CREATE TABLE resolution_queue (
    id            bigserial PRIMARY KEY,
    council_code  text NOT NULL,
    local_id      text NOT NULL,
    -- the national id the record held when a delete queued it: the resolver refreshes
    -- the status of the records left holding it (the tombstone itself holds none)
    released_id   text,
    queued_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resolution_queue_record ON resolution_queue (council_code, local_id);

