-- Which set of blocking keys the records' keys were made by (protocol.matching.blocking
-- KEY_SCHEME). Keys are derived from each record's identity and held, so when the code
-- makes other keys every held record must be keyed again: 'db upgrade' does it after
-- the migrations (server_common/key_scheme_store.py), and serve refuses to start while
-- the scheme held is not the code's.
--
-- Scheme 2 replaced family name + birth year + initial (fy:) with fg: (+ given name)
-- and fd: (+ day of the month + initial). A hub that holds records holds scheme 1's
-- keys; an empty one has nothing to key again.
CREATE TABLE blocking_key_scheme (
    scheme  integer NOT NULL,
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row)
);
INSERT INTO blocking_key_scheme (scheme)
SELECT CASE WHEN EXISTS (SELECT 1 FROM record_keys) THEN 1 ELSE 2 END;
