-- A shielded child's location weighs nothing anywhere (docs/security.md): the term
-- counts of migration 014 leave out the postcode and address line of every record
-- shielded by its own flag or marked (shield_marks), as the resolver's candidate
-- columns do. Otherwise an explanation's weights would say how many shielded children
-- live at a postcode.
--
-- A record's location is masked while it is flagged or holds any mark. The records
-- triggers write the masked values; the shield_marks triggers write a record's change
-- of mask (first mark added, last mark removed) as two rows: the location counted or
-- no longer, and an empty row of the opposite sign, so the records counted (the sum
-- of every row's delta) do not move.

CREATE FUNCTION term_masked(council text, local text, flagged boolean) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT $3 OR EXISTS (SELECT 1 FROM shield_marks m
                         WHERE m.council_code = $1 AND m.local_id = $2)
$$;

-- ``value`` (a postcode or address line) as counted: NULL when the record is masked.
CREATE FUNCTION term_location(council text, local text, flagged boolean, value text)
    RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN term_masked($1, $2, $3) THEN NULL ELSE $4 END
$$;

CREATE OR REPLACE FUNCTION term_changes_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT n.given_name, n.family_name,
           CASE WHEN m THEN NULL ELSE n.postcode END,
           CASE WHEN m THEN NULL ELSE n.address_line END,
           n.nhs_number, term_person(n.given_name, n.family_name, n.dob), 1
    FROM (SELECT *, term_masked(council_code, local_id, shielded) AS m FROM new_rows
          WHERE record IS NOT NULL AND national_id IS NOT NULL) n;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION term_changes_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT o.given_name, o.family_name,
           CASE WHEN m THEN NULL ELSE o.postcode END,
           CASE WHEN m THEN NULL ELSE o.address_line END,
           o.nhs_number, term_person(o.given_name, o.family_name, o.dob), -1
    FROM (SELECT *, term_masked(council_code, local_id, shielded) AS m FROM old_rows
          WHERE record IS NOT NULL AND national_id IS NOT NULL) o;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION term_changes_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT g, f, p, a, nhs, term_person(g, f, d), -1::smallint FROM (
        SELECT given_name, family_name,
               term_location(council_code, local_id, shielded, postcode),
               term_location(council_code, local_id, shielded, address_line),
               nhs_number, dob
        FROM old_rows WHERE record IS NOT NULL AND national_id IS NOT NULL
        EXCEPT ALL
        SELECT given_name, family_name,
               term_location(council_code, local_id, shielded, postcode),
               term_location(council_code, local_id, shielded, address_line),
               nhs_number, dob
        FROM new_rows WHERE record IS NOT NULL AND national_id IS NOT NULL
    ) AS gone(g, f, p, a, nhs, d)
    UNION ALL
    SELECT g, f, p, a, nhs, term_person(g, f, d), 1::smallint FROM (
        SELECT given_name, family_name,
               term_location(council_code, local_id, shielded, postcode),
               term_location(council_code, local_id, shielded, address_line),
               nhs_number, dob
        FROM new_rows WHERE record IS NOT NULL AND national_id IS NOT NULL
        EXCEPT ALL
        SELECT given_name, family_name,
               term_location(council_code, local_id, shielded, postcode),
               term_location(council_code, local_id, shielded, address_line),
               nhs_number, dob
        FROM old_rows WHERE record IS NOT NULL AND national_id IS NOT NULL
    ) AS came(g, f, p, a, nhs, d);
    RETURN NULL;
END $$;

-- A counted, unflagged record's first mark: its location is no longer counted.
CREATE FUNCTION term_marks_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH newly AS (
        SELECT r.postcode, r.address_line
        FROM (SELECT council_code, local_id, count(*) AS added FROM new_rows
              GROUP BY council_code, local_id) k
        JOIN records r ON r.council_code = k.council_code AND r.local_id = k.local_id
        WHERE r.record IS NOT NULL AND r.national_id IS NOT NULL AND NOT r.shielded
          AND (SELECT count(*) FROM shield_marks m WHERE m.council_code = k.council_code
               AND m.local_id = k.local_id) = k.added
    )
    INSERT INTO term_changes (postcode, address_line, delta)
    SELECT postcode, address_line, -1 FROM newly
    UNION ALL SELECT NULL, NULL, 1 FROM newly;
    RETURN NULL;
END $$;

-- Its last mark removed: its location is counted again.
CREATE FUNCTION term_marks_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH unmasked AS (
        SELECT r.postcode, r.address_line
        FROM (SELECT DISTINCT council_code, local_id FROM old_rows) k
        JOIN records r ON r.council_code = k.council_code AND r.local_id = k.local_id
        WHERE r.record IS NOT NULL AND r.national_id IS NOT NULL AND NOT r.shielded
          AND NOT EXISTS (SELECT 1 FROM shield_marks m WHERE m.council_code = k.council_code
                          AND m.local_id = k.local_id)
    )
    INSERT INTO term_changes (postcode, address_line, delta)
    SELECT postcode, address_line, 1 FROM unmasked
    UNION ALL SELECT NULL, NULL, -1 FROM unmasked;
    RETURN NULL;
END $$;

CREATE TRIGGER shield_marks_term_insert AFTER INSERT ON shield_marks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION term_marks_insert();
CREATE TRIGGER shield_marks_term_delete AFTER DELETE ON shield_marks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION term_marks_delete();

-- The records already counted with a location now masked: no longer counted.
INSERT INTO term_changes (postcode, address_line, delta)
SELECT postcode, address_line, d FROM (
    SELECT r.postcode, r.address_line FROM records r
    WHERE r.record IS NOT NULL AND r.national_id IS NOT NULL
      AND term_masked(r.council_code, r.local_id, r.shielded)) masked
CROSS JOIN LATERAL (VALUES (-1::smallint)) AS s(d)
UNION ALL
SELECT NULL, NULL, 1 FROM records r
WHERE r.record IS NOT NULL AND r.national_id IS NOT NULL
  AND term_masked(r.council_code, r.local_id, r.shielded);
