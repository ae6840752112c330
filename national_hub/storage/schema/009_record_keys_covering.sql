-- The resolver looks each blocking key of a chunk up and reads at most max_block + 1
-- of its holders (storage/resolution.py, candidates): with the holders in the index,
-- that is an index-only scan, and no query scans record_keys as a whole any more.
DROP INDEX record_keys_key;
CREATE INDEX record_keys_key ON record_keys (key) INCLUDE (council_code, local_id);
