-- The national hub: council registry and keys, the batch log (with the exact
-- signed bytes, for provenance), the minimal records, and the national ids.

CREATE TABLE councils (
    code          text PRIMARY KEY,
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    cursor_seq    bigint NOT NULL DEFAULT 0,
    cursor_hash   text NOT NULL DEFAULT repeat('0', 64),
    -- set when the council signed two different batches with one seq
    forked_at     timestamptz,
    fork_detail   text
);

CREATE TABLE council_keys (
    kid           text PRIMARY KEY,
    council_code  text NOT NULL REFERENCES councils (code),
    public_key    bytea NOT NULL,
    enrolled_at   timestamptz NOT NULL DEFAULT now(),
    not_after     timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX council_keys_council ON council_keys (council_code);

-- Every request nonce seen, shared by all hub replicas; old ones are purged.
CREATE TABLE request_nonces (
    origin   text NOT NULL,
    nonce    text NOT NULL,
    seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (origin, nonce)
);
CREATE INDEX request_nonces_seen ON request_nonces (seen_at);

CREATE TABLE batches (
    council_code  text NOT NULL REFERENCES councils (code),
    seq           bigint NOT NULL,
    hash          text NOT NULL,
    prev          text NOT NULL,
    kid           text NOT NULL,
    envelope      bytea NOT NULL,   -- exact bytes received: payload and signature
    receipt       bytea NOT NULL,   -- exact signed receipt returned
    op_count      integer NOT NULL,
    applied_count integer NOT NULL,
    rejected_count integer NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (council_code, seq)
);

-- Refused batches (signature, seq gap, fork…), for operators.
-- Envelopes are msgpack of mostly short strings: compression gains little and costs
-- the hub CPU on every batch.
ALTER TABLE batches ALTER COLUMN envelope SET STORAGE EXTERNAL;
ALTER TABLE batches ALTER COLUMN receipt SET STORAGE EXTERNAL;

CREATE TABLE rejected_batches (
    id            bigserial PRIMARY KEY,
    council_code  text NOT NULL,
    seq           bigint,
    code          text NOT NULL,
    message       text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejected_batches_council ON rejected_batches (council_code, received_at);

CREATE TABLE national_children (
    national_id   text PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- a retired id points at the id that absorbed it; ids are never reused
    redirect_to   text REFERENCES national_children (national_id)
);
CREATE SEQUENCE national_id_seq;

-- The current minimal record of each (council, local_id). A delete keeps a
-- tombstone (record IS NULL) so a late, older upsert is recognised as stale.
CREATE TABLE records (
    council_code      text NOT NULL REFERENCES councils (code),
    local_id          text NOT NULL,
    version           bigint NOT NULL,
    record            bytea,            -- exact record bytes from the batch
    digest            text,             -- sha256 hex of record
    batch_seq         bigint NOT NULL,
    given_name        text,
    family_name       text,
    dob               date,
    sex               smallint,
    postcode          text,
    nhs_number        text,
    upn               text,
    shielded          boolean NOT NULL DEFAULT false,
    national_id       text REFERENCES national_children (national_id),
    link_status       text,             -- linked | review | single
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (council_code, local_id)
);
CREATE INDEX records_nhs ON records (nhs_number) WHERE nhs_number IS NOT NULL AND record IS NOT NULL;
CREATE INDEX records_national ON records (national_id);

-- What each node last said about itself.
CREATE TABLE heartbeats (
    council_code  text PRIMARY KEY REFERENCES councils (code),
    head_seq      bigint NOT NULL,
    outbox_depth  bigint NOT NULL,
    sent_at       timestamptz,
    received_at   timestamptz NOT NULL DEFAULT now()
);
