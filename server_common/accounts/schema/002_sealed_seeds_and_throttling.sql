-- TOTP seeds sealed at rest, and throttling by client address instead of lock-out.
--
-- totp_sealed holds AES-256-GCM(seed) under the key in accounts.secret_key_file
-- (server_common.accounts.seeds); the key is not in the database, so SQL alone cannot
-- do the sealing: every server seals the remaining plain seeds when it starts (and
-- each `users` command does too), then clears them (AccountService.seal_plain_seeds).
ALTER TABLE users ADD COLUMN totp_sealed bytea;
ALTER TABLE users ALTER COLUMN totp_secret DROP NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_one_seed
    CHECK ((totp_secret IS NULL) <> (totp_sealed IS NULL));

-- Accounts are no longer locked: a lock any anonymous caller could set was a way to
-- keep a real user out. Failures are throttled per (address, name) and per address;
-- `users unlock NAME` stops earlier failures of NAME from counting.
UPDATE users SET failed_logins = 0, locked_until = NULL;
ALTER TABLE login_failures ADD COLUMN counted boolean NOT NULL DEFAULT true;
CREATE INDEX login_failures_remote ON login_failures (remote, at);
