-- Witnessing (docs/audit.md "Witnesses"): councils' nodes cosign the hub's checkpoints.
-- Both sides live in the shared audit track, so hub and node run the same files; a
-- hub fills the first two tables, a node the last two.

-- At the log's side: each witness's cosignatures (C2SP cosignature/v1 lines), checked
-- against the witness's enrolled key when they arrive. A witness's newest cosignature
-- (by arrival) gives the size and root the log must stay consistent with.
CREATE TABLE audit_cosignatures (
    id           bigserial PRIMARY KEY,    -- arrival order: the newest binds
    witness      text NOT NULL,            -- the council code
    tree_size    bigint NOT NULL CHECK (tree_size >= 0),
    root_hash    bytea NOT NULL CHECK (length(root_hash) = 32),
    kid          text NOT NULL,            -- the council key that cosigned
    cosignature  text NOT NULL,
    cosigned_at  timestamptz NOT NULL,     -- the time inside the cosignature
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_cosignatures_latest ON audit_cosignatures (witness, id DESC);

-- A witness that refused to cosign says why (truncation, rewrite, fork, bad signature).
CREATE TABLE audit_witness_alarms (
    id             bigserial PRIMARY KEY,
    witness        text NOT NULL,
    reason         text NOT NULL,
    cosigned_size  bigint,                 -- the witness's last cosigned size
    offered_size   bigint,                 -- the size of the checkpoint it refused
    received_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_witness_alarms_latest ON audit_witness_alarms (witness, received_at DESC);

-- At the witness's side: the checkpoints of a remote log (by origin) this server
-- checked and cosigned, each with its own cosignature. The newest is what the next
-- checkpoint must be consistent with; the remote log's operators cannot reach it.
CREATE TABLE witnessed_checkpoints (
    id           bigserial PRIMARY KEY,    -- the newest is the one to extend
    origin       text NOT NULL,
    tree_size    bigint NOT NULL CHECK (tree_size >= 0),
    root_hash    bytea NOT NULL CHECK (length(root_hash) = 32),
    note         text NOT NULL,            -- the log's signed note, as received
    cosignature  text NOT NULL,            -- ours
    cosigned_at  timestamptz NOT NULL,     -- the time inside our cosignature
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    -- set when a person accepted this checkpoint although it does not extend the
    -- one kept before (local-node audit accept-hub, after an incident)
    accepted_reason text
);

-- Checkpoints this server refused to cosign, and why.
CREATE TABLE witness_refusals (
    id            bigserial PRIMARY KEY,
    origin        text NOT NULL,
    reason        text NOT NULL,
    kept_size     bigint,
    offered_size  bigint,
    offered_note  text,
    refused_at    timestamptz NOT NULL DEFAULT now()
);

-- Evidence is append-only, as the log is (a superuser can still disable the triggers:
-- that is why the other side keeps its own copy).
CREATE TRIGGER audit_cosignatures_append_only BEFORE UPDATE OR DELETE ON audit_cosignatures
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_witness_alarms_append_only BEFORE UPDATE OR DELETE ON audit_witness_alarms
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER witnessed_checkpoints_append_only BEFORE UPDATE OR DELETE ON witnessed_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER witness_refusals_append_only BEFORE UPDATE OR DELETE ON witness_refusals
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
