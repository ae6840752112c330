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
-- whose counted values change, is written.
CREATE FUNCTION term_changes_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT v.given_name, v.family_name, v.postcode, v.address_line, v.nhs_number,
           term_person(v.given_name, v.family_name, v.dob), v.delta
    FROM old_rows o JOIN new_rows n
      ON n.council_code = o.council_code AND n.local_id = o.local_id
    CROSS JOIN LATERAL (VALUES
        (o.given_name, o.family_name, o.postcode, o.address_line, o.nhs_number, o.dob,
         -1::smallint, o.record IS NOT NULL AND o.national_id IS NOT NULL),
        (n.given_name, n.family_name, n.postcode, n.address_line, n.nhs_number, n.dob,
         1::smallint, n.record IS NOT NULL AND n.national_id IS NOT NULL))
        AS v(given_name, family_name, postcode, address_line, nhs_number, dob, delta,
             counted)
    WHERE v.counted AND (
        (o.record IS NOT NULL AND o.national_id IS NOT NULL)
            IS DISTINCT FROM (n.record IS NOT NULL AND n.national_id IS NOT NULL)
        OR o.given_name IS DISTINCT FROM n.given_name
        OR o.family_name IS DISTINCT FROM n.family_name
        OR o.postcode IS DISTINCT FROM n.postcode
        OR o.address_line IS DISTINCT FROM n.address_line
        OR o.nhs_number IS DISTINCT FROM n.nhs_number
        OR o.dob IS DISTINCT FROM n.dob);
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
