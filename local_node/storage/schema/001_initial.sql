-- A council's local children's index: children, the source rows they came from,
-- involvements (pointers to services and professionals), and the transactional
-- outbox of what is published to the hub, with the batches sent and receipts got.

CREATE SEQUENCE child_local_id_seq;

CREATE TABLE children (
    local_id            text PRIMARY KEY,
    given_name          text NOT NULL,
    other_given_names   text,
    family_name         text NOT NULL,
    former_family_names text[] NOT NULL DEFAULT '{}',
    dob                 date NOT NULL,
    sex                 smallint NOT NULL DEFAULT 0,
    address_line        text,
    postcode            text,
    nhs_number          text,
    upn                 text,
    parent_carer_name   text,
    parent_carer_phone  text,
    shielded            boolean NOT NULL DEFAULT false,
    date_of_death       date,
    -- version of the last projection put in the outbox (0 = never published)
    published_version   bigint NOT NULL DEFAULT 0,
    published_digest    text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX children_nhs ON children (nhs_number) WHERE nhs_number IS NOT NULL;
CREATE UNIQUE INDEX children_upn ON children (upn) WHERE upn IS NOT NULL;
CREATE INDEX children_name_dob ON children (lower(family_name), lower(given_name), dob);

-- Every source row as received, kept with its source reference.
CREATE TABLE source_records (
    source       text NOT NULL,
    source_ref   text NOT NULL,
    local_id     text NOT NULL REFERENCES children (local_id),
    identity     jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_ref)
);
CREATE INDEX source_records_child ON source_records (local_id);

CREATE TABLE involvements (
    source              text NOT NULL,
    source_ref          text NOT NULL,
    local_id            text NOT NULL REFERENCES children (local_id),
    service_type        text NOT NULL,
    organisation_code   text,
    organisation_name   text,
    organisation_phone  text,
    professional_name   text,
    professional_role   text,
    professional_phone  text,
    professional_email  text,
    start_date          date,
    end_date            date,
    lead_professional   boolean NOT NULL DEFAULT false,
    caf_done            boolean NOT NULL DEFAULT false,
    sensitive           boolean NOT NULL DEFAULT false,
    consent             boolean NOT NULL DEFAULT false,
    PRIMARY KEY (source, source_ref)
);
CREATE INDEX involvements_child ON involvements (local_id);

-- The transactional outbox: written in the same transaction as the change.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    local_id    text NOT NULL,
    version     bigint NOT NULL,
    op          text NOT NULL CHECK (op IN ('upsert', 'delete')),
    record      bytea,          -- exact msgpack record bytes of an upsert
    digest      text,
    batch_seq   bigint,         -- set when the entry is put in a batch
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_pending ON outbox (id) WHERE batch_seq IS NULL;
CREATE INDEX outbox_child ON outbox (local_id, id);

-- Batches exactly as signed and sent (resent byte for byte after a crash), and
-- the hub's signed receipt once it comes back.
CREATE TABLE sent_batches (
    seq          bigint PRIMARY KEY,
    hash         text NOT NULL,
    prev         text NOT NULL,
    envelope     bytea NOT NULL,
    op_count     integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    receipt      bytea,
    receipt_at   timestamptz,
    applied      integer,
    rejected     integer,
    stale        integer
);

-- Records the hub refused, from receipts: the index team fixes them at source.
CREATE TABLE publish_rejections (
    seq         bigint NOT NULL,
    local_id    text,
    code        text NOT NULL,
    message     text,
    noted_at    timestamptz NOT NULL DEFAULT now()
);
