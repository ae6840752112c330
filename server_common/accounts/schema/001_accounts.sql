-- Accounts and logins, the same on the hub and on every council node (docs/design.md §6).
-- Applied by server_common.database as the shared track "schema_migrations_accounts".

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    role            text NOT NULL
                    CHECK (role IN ('practitioner', 'index_team', 'operator', 'auditor')),
    council         text,              -- the council an index_team account works for
    organisation    text NOT NULL DEFAULT '',
    password_hash   text NOT NULL,     -- argon2id, PHC string
    totp_secret     text NOT NULL,     -- base32
    last_totp_step  bigint,            -- a TOTP code is accepted once (no replay)
    disabled        boolean NOT NULL DEFAULT false,
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'index_team') = (council IS NOT NULL))
);

-- Web sessions: only the sha256 of the cookie's random id is stored.
CREATE TABLE sessions (
    id_hash       bytea PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,       -- synchronizer token for this session's forms
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Bearer tokens for the JSON API: only the sha256 of the token is stored.
CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Every refused login, kept for investigation (the name as typed, even if unknown).
CREATE TABLE login_failures (
    id        bigserial PRIMARY KEY,
    name      text NOT NULL,
    user_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    reason    text NOT NULL,
    remote    text,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_name ON login_failures (name, at);
