-- What the hub last said about each of the council's signing keys: its expiry
-- (not_after; NULL = none), shown by `local-node status` and warned about by the publisher.

CREATE TABLE key_status (
    kid          text PRIMARY KEY,
    not_after    timestamptz,
    reported_at  timestamptz NOT NULL DEFAULT now()
);
