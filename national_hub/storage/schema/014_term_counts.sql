-- Term frequencies kept up to date as records change (docs/scaling.md), instead of the
-- resolver grouping every resolved record of the hub at a fresh process's first chunk
-- and every ten minutes (a read linear in the hub: 2 s at 107,000 records).
--
-- What is counted: the resolved live records (record IS NOT NULL AND national_id IS
-- NOT NULL), as the resolver's full read counted them: their given and family names,
-- postcodes and address lines (term frequencies), NHS numbers and (lower-cased names,
-- date of birth) triples (the prior's partner rate).
--
-- Two steps, because the counts are kept by the matcher's normalised values, which only
-- Python computes (protocol.matching): statement triggers on records append each
-- change of a counted record's raw values to term_changes, in the transaction that
-- writes the record (intake, deletes, retention, the resolver's own writes: every path,
-- by construction); the resolver, under its lock, folds them into term_counts (one row
-- per normalised value) and term_totals (each field's sum, sum of squares and records
-- with a partner) at the start of each chunk, then reads only the values its chunk needs.
-- Appending never contends (no hot "Smith" row under two councils' intake locks);
-- one writer folds.

CREATE TABLE term_changes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    given_name    text,
    family_name   text,
    postcode      text,
    address_line  text,
    nhs_number    text,
    person        text,     -- lower(given) US lower(family) US days since 2000-01-01
    delta         smallint NOT NULL  -- +1 counted from now, -1 no longer
);

CREATE TABLE term_counts (
    field  text NOT NULL,   -- given, family, postcode, address, nhs, person
    key    text NOT NULL,   -- the normalised value (nhs, person: as stored)
    n      bigint NOT NULL,     -- 0 only inside a fold, which deletes it
    PRIMARY KEY (field, key)
);

CREATE TABLE term_totals (
    field      text PRIMARY KEY,  -- as term_counts, and 'records' (the records counted)
    total      bigint NOT NULL DEFAULT 0,  -- sum of n
    squares    bigint NOT NULL DEFAULT 0,  -- sum of n squared
    partnered  bigint NOT NULL DEFAULT 0   -- sum of n over keys held more than once
);
INSERT INTO term_totals (field)
VALUES ('records'), ('given'), ('family'), ('postcode'), ('address'), ('nhs'), ('person');

-- The (lower-cased given name, family name, date of birth) a record is counted under
-- for the prior when no record holds an NHS number; NULL unless all three are known.
-- The unit separator cannot occur in a name (records refuse control characters).
CREATE FUNCTION term_person(given text, family text, dob date) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN given IS NULL OR family IS NULL OR dob IS NULL THEN NULL
                ELSE lower(given) || chr(31) || lower(family) || chr(31)
                     || (dob - DATE '2000-01-01')::text END
$$;

CREATE FUNCTION term_changes_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT n.given_name, n.family_name, n.postcode, n.address_line, n.nhs_number,
           term_person(n.given_name, n.family_name, n.dob), 1
    FROM new_rows n WHERE n.record IS NOT NULL AND n.national_id IS NOT NULL;
    RETURN NULL;
END $$;

CREATE FUNCTION term_changes_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT o.given_name, o.family_name, o.postcode, o.address_line, o.nhs_number,
           term_person(o.given_name, o.family_name, o.dob), -1
    FROM old_rows o WHERE o.record IS NOT NULL AND o.national_id IS NOT NULL;
    RETURN NULL;
END $$;

-- Most updates of records touch none of this (status, national id to another id,
-- archiving): only a record that starts or stops being counted, or a counted record
-- whose counted values change, is written: the counted values before the statement
-- less those after (as multisets) are no longer counted, those after less those before
-- are. No join of the two transition tables: PL/pgSQL keeps the plan of a function's
-- first call, and a join planned for a one-row update ran as a nested loop over the
-- next 5,000-row one (59 s measured; see queue_notice_events below).
CREATE FUNCTION term_changes_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT g, f, p, a, nhs, term_person(g, f, d), -1::smallint FROM (
        SELECT given_name, family_name, postcode, address_line, nhs_number, dob
        FROM old_rows WHERE record IS NOT NULL AND national_id IS NOT NULL
        EXCEPT ALL
        SELECT given_name, family_name, postcode, address_line, nhs_number, dob
        FROM new_rows WHERE record IS NOT NULL AND national_id IS NOT NULL
    ) AS gone(g, f, p, a, nhs, d)
    UNION ALL
    SELECT g, f, p, a, nhs, term_person(g, f, d), 1::smallint FROM (
        SELECT given_name, family_name, postcode, address_line, nhs_number, dob
        FROM new_rows WHERE record IS NOT NULL AND national_id IS NOT NULL
        EXCEPT ALL
        SELECT given_name, family_name, postcode, address_line, nhs_number, dob
        FROM old_rows WHERE record IS NOT NULL AND national_id IS NOT NULL
    ) AS came(g, f, p, a, nhs, d);
    RETURN NULL;
END $$;

-- The notices' trigger (migration 013) joined the two transition tables; its plan,
-- cached from the first (small) update of a hub connection, made the resolver's
-- write of a chunk's national ids quadratic: 56 s of a 68 s chunk of 4,978 records
-- (bench.publish, 5,000 children), and 59 s against 0.6 s for 5,000 rows updated
-- after a one-row update. The same rows, as a set difference (no join to mis-plan):
-- a record is queued when its national id or content changed.
CREATE OR REPLACE FUNCTION queue_notice_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notice_events (council_code, local_id)
    SELECT council_code, local_id FROM (
        SELECT council_code, local_id, national_id, digest FROM new_rows
        EXCEPT
        SELECT council_code, local_id, national_id, digest FROM old_rows
    ) AS changed;
    RETURN NULL;
END $$;

CREATE TRIGGER records_term_changes_insert AFTER INSERT ON records
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION term_changes_insert();
CREATE TRIGGER records_term_changes_update AFTER UPDATE ON records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION term_changes_update();
CREATE TRIGGER records_term_changes_delete AFTER DELETE ON records
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION term_changes_delete();

-- The records already here: counted at the resolver's first chunk after the upgrade.
INSERT INTO term_changes (given_name, family_name, postcode, address_line, nhs_number,
                          person, delta)
SELECT given_name, family_name, postcode, address_line, nhs_number,
       term_person(given_name, family_name, dob), 1
FROM records WHERE record IS NOT NULL AND national_id IS NOT NULL;
