-- Each record's blocking keys as one row (record_key_sets), and record_keys indexed
-- once, by key (docs/scaling.md, "One index on record_keys").
--
-- record_keys had two indexes of a row each: its primary key (council_code, local_id,
-- key), which only served "the keys of this record" (replacing them, shielding), and
-- (key) INCLUDE (council_code, local_id) for the candidate reads. At ~13 keys a record
-- the first was half of the cost of copying a batch's keys in. Now the primary key
-- is (key, council_code, local_id): the candidate reads probe it as before (an
-- index-only scan), and a record's keys are found from its one row here, each then
-- by its exact entry in that index. Measured on 20,000 records' keys copied in:
-- 65-76 -> 42-57 us a record, 2,869 -> 2,358 bytes a record.
--
-- Invariant, kept by national_hub/storage/key_sets.py (every write of either table):
-- a record has a row here exactly when it holds keys in record_keys, and the row's
-- keys are those rows' keys.
CREATE TABLE record_key_sets (
    council_code  text NOT NULL,
    local_id      text NOT NULL,
    keys          text[] COLLATE "C" NOT NULL CHECK (cardinality(keys) > 0),
    PRIMARY KEY (council_code, local_id)
);

INSERT INTO record_key_sets (council_code, local_id, keys)
SELECT council_code, local_id, array_agg(key ORDER BY key)
FROM record_keys GROUP BY council_code, local_id;

ALTER TABLE record_keys DROP CONSTRAINT record_keys_pkey;
DROP INDEX record_keys_key;
ALTER TABLE record_keys ADD PRIMARY KEY (key, council_code, local_id);
