-- Request counts per caller per minute (server_common/ratelimit). Shared through
-- PostgreSQL so every replica of a server counts against the same limit. UNLOGGED:
-- counts are worth nothing after a crash, and skipping the WAL keeps each request's
-- upsert cheap (nor are they copied to a streaming replica).
CREATE UNLOGGED TABLE rate_limit_hits (
    key           text NOT NULL,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL,
    PRIMARY KEY (key, window_start)
);
