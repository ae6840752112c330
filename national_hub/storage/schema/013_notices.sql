-- Notices (docs/notices.md): telling each council involved with a child
-- when another council or service becomes involved.
--
-- Derived from what resolution, review and batch intake already write, without
-- touching them: a statement trigger on records queues every record whose national id
-- or content changed (notice_events, a queue like resolution_queue); the hub's notice
-- job drains it, compares with what it last saw of each record (notice_seen) and
-- writes the notices. One notice per recipient council, child and day: later events
-- that day are coalesced into it and move it to a new seq, the nodes' cursor.

CREATE TABLE notice_events (
    id            bigserial PRIMARY KEY,
    council_code  text NOT NULL,
    local_id      text NOT NULL,
    queued_at     timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION queue_notice_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notice_events (council_code, local_id)
    SELECT n.council_code, n.local_id
    FROM new_rows n LEFT JOIN old_rows o
      ON o.council_code = n.council_code AND o.local_id = n.local_id
    WHERE o.local_id IS NULL
       OR n.national_id IS DISTINCT FROM o.national_id
       OR n.digest IS DISTINCT FROM o.digest;
    RETURN NULL;
END $$;

-- Transition tables cannot go with a column list, so the filter is in the function.
CREATE TRIGGER records_notice_events_update AFTER UPDATE ON records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION queue_notice_events();

-- What the notice job last saw of each record: the child it was placed with and its
-- (non-sensitive) service types, so only a change is told. services NULL: not known
-- yet (learnt at the record's next change, not told).
CREATE TABLE notice_seen (
    council_code  text NOT NULL,
    local_id      text NOT NULL,
    national_id   text,
    services      text[],
    PRIMARY KEY (council_code, local_id)
);
CREATE INDEX notice_seen_national ON notice_seen (national_id);

-- The records already here are where they are: an upgraded hub tells nobody about
-- links it made before notices existed.
INSERT INTO notice_seen (council_code, local_id, national_id)
SELECT council_code, local_id, national_id FROM records WHERE record IS NOT NULL;

CREATE SEQUENCE notice_seq;

CREATE TABLE notices (
    id            bigserial PRIMARY KEY,
    seq           bigint NOT NULL DEFAULT nextval('notice_seq'),
    council_code  text NOT NULL,     -- the recipient
    national_id   text NOT NULL,
    day           date NOT NULL,
    local_ids     text[] NOT NULL,   -- the recipient's own records of the child
    shielded      boolean NOT NULL,
    events        jsonb NOT NULL,    -- protocol.notices.NoticeEvent wire forms
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (council_code, national_id, day)
);
CREATE UNIQUE INDEX notices_cursor ON notices (council_code, seq);

-- The newest seq each council's node has asked past (its cursor), for /ops and the
-- undelivered-notices alert.
CREATE TABLE notice_cursors (
    council_code  text PRIMARY KEY,
    delivered_seq bigint NOT NULL,
    fetched_at    timestamptz NOT NULL DEFAULT now()
);
