-- Key rotation (docs/PROTOCOL.md §5.1): every key a council enrolled itself, with the
-- exact announcement envelope, signed by the old and the new key, that introduced it.
-- It is the hub's proof that the council, not an operator or an intruder, chose the key.

CREATE TABLE key_announcements (
    new_kid       text PRIMARY KEY REFERENCES council_keys (kid),
    council_code  text NOT NULL REFERENCES councils (code),
    old_kid       text NOT NULL REFERENCES council_keys (kid),
    envelope      bytea NOT NULL,   -- exact bytes received
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX key_announcements_council ON key_announcements (council_code, received_at);
