-- Federation health (docs/design.md §7): every heartbeat is kept for 48 h (pruned by the
-- statement that appends one), so operators can chart a council's lag over time.

CREATE TABLE heartbeat_history (
    council_code  text NOT NULL REFERENCES councils (code),
    received_at   timestamptz NOT NULL DEFAULT now(),
    head_seq      bigint NOT NULL,   -- what the node said its head was
    outbox_depth  bigint NOT NULL,
    hub_seq       bigint NOT NULL    -- the hub's cursor when the heartbeat arrived
);
CREATE INDEX heartbeat_history_council ON heartbeat_history (council_code, received_at);

-- The throughput chart reads a council's recent batches by time.
CREATE INDEX batches_applied ON batches (council_code, applied_at);
