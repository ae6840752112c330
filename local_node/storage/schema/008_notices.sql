-- Notices from the hub (docs/notices.md): what arrived, to whom each was
-- routed, read and emailed; and which practitioners watch which children.

-- The hub's cursor: the ``next`` of the last page taken (one row).
CREATE TABLE notice_cursor (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    after_seq bigint NOT NULL
);

-- One row per hub notice (its id); a coalesced notice replaces its row.
CREATE TABLE notices (
    id           bigint PRIMARY KEY,
    seq          bigint NOT NULL,
    national_id  text NOT NULL,
    day          date NOT NULL,
    local_ids    text[] NOT NULL,
    shielded     boolean NOT NULL,
    events       jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Whose inbox a notice is in: 'team' (the index team), 'user:<name>' (a watcher) or
-- 'email:<address>' (the lead professional of this council's own involvement).
-- A coalesced notice is unread again and due for another email.
CREATE TABLE notice_deliveries (
    notice_id     bigint NOT NULL REFERENCES notices (id),
    recipient     text NOT NULL,
    email         text,              -- where "something to look at" is sent, if anywhere
    read_at       timestamptz,
    emailed_at    timestamptz,
    email_due     boolean NOT NULL DEFAULT false,
    email_failures integer NOT NULL DEFAULT 0,
    last_error    text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notice_id, recipient)
);
CREATE INDEX notice_deliveries_due ON notice_deliveries (notice_id) WHERE email_due;
CREATE INDEX notice_deliveries_recipient ON notice_deliveries (recipient);

-- A practitioner's work address, so notices for the lead professional whose email
-- an involvement names reach that practitioner's inbox too (local-node notices address).
CREATE TABLE notice_addresses (
    user_name  text PRIMARY KEY,
    email      text NOT NULL UNIQUE
);

CREATE TABLE child_watches (
    user_name   text NOT NULL,
    local_id    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_name, local_id)
);
CREATE INDEX child_watches_child ON child_watches (local_id);
