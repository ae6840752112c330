-- The tamper-evident audit log (docs/design.md §6, docs/audit.md), the same on every server.
-- Applied by server_common.database as the shared track "schema_migrations_audit".

-- One row per entry. seq is the Merkle leaf index (0, 1, 2, …) and is gapless: it
-- comes from audit_head, whose single row the appending transaction locks until it
-- commits, so concurrent hub replicas are ordered by PostgreSQL and a rolled-back
-- append gives its number back. entry is the exact leaf (canonical JSON); who,
-- child_ids and at repeat fields of it for the auditors' look-ups, and
-- `audit verify` checks they agree with it.
CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY CHECK (seq >= 0),
    entry      bytea NOT NULL,
    leaf_hash  bytea NOT NULL CHECK (length(leaf_hash) = 32),
    who        text NOT NULL,
    child_ids  text[] NOT NULL DEFAULT '{}',
    at         timestamptz NOT NULL
);
CREATE INDEX audit_log_child_ids ON audit_log USING gin (child_ids);
CREATE INDEX audit_log_who ON audit_log (who, seq);

CREATE TABLE audit_head (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    next_seq  bigint NOT NULL CHECK (next_seq >= 0)
);
INSERT INTO audit_head (one, next_seq) VALUES (true, 0);

-- Signed tree heads. note is the whole C2SP signed note, exactly as signed.
CREATE TABLE audit_checkpoints (
    tree_size   bigint PRIMARY KEY CHECK (tree_size >= 0),
    root_hash   bytea NOT NULL CHECK (length(root_hash) = 32),
    signed_at   timestamptz NOT NULL,
    kid         text NOT NULL,   -- protocol.keys.key_id of the hub key that signed
    note        text NOT NULL
);

-- Append-only: the database itself refuses to change or remove an entry or a
-- checkpoint. (A superuser can still disable the trigger; that is what the Merkle
-- tree and the signed checkpoints catch.)
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- The counter only ever moves forward, and its row stays.
CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.next_seq <= OLD.next_seq THEN
        RAISE EXCEPTION 'audit_head only moves forward'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();
CREATE TRIGGER audit_head_kept BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
