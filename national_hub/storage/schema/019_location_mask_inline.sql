-- Whether a record's location is masked (flagged shielded, or holding a shield mark:
-- migration 015) is now written out where it is asked, not asked of term_masked().
--
-- term_masked() was a SQL function around an EXISTS, and PostgreSQL never inlines a
-- function whose body holds a subquery: every call ran the function's own executor,
-- about 3 us (0.66 s for the 228,771 records of bench.resolution's hub, against 0.08 s
-- for the same test written in the statement). The records triggers called it up to
-- eight times for each row an UPDATE wrote (term_location() for the postcode and the
-- address line, on each side of both set differences), and the resolver writes every
-- record's national id at least once: 30,000 records' national ids changed in 77-86 us
-- a row, 38-44 with the triggers below, 31-39 with no trigger at all. The resolver's
-- reads called it twice for each candidate record (storage/resolution.py,
-- LOCATION_MASKED now).
--
-- The triggers below count exactly what those of migration 015 count: the mask is
-- the same test, read at the same moment, only computed once for each row of each
-- transition table.

CREATE OR REPLACE FUNCTION term_changes_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT n.given_name, n.family_name,
           CASE WHEN masked THEN NULL ELSE n.postcode END,
           CASE WHEN masked THEN NULL ELSE n.address_line END,
           n.nhs_number, term_person(n.given_name, n.family_name, n.dob), 1
    FROM (SELECT r.*, r.shielded OR EXISTS (
                   SELECT 1 FROM shield_marks sm
                   WHERE sm.council_code = r.council_code AND sm.local_id = r.local_id)
                 AS masked
          FROM new_rows r
          WHERE r.record IS NOT NULL AND r.national_id IS NOT NULL) n;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION term_changes_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT o.given_name, o.family_name,
           CASE WHEN masked THEN NULL ELSE o.postcode END,
           CASE WHEN masked THEN NULL ELSE o.address_line END,
           o.nhs_number, term_person(o.given_name, o.family_name, o.dob), -1
    FROM (SELECT r.*, r.shielded OR EXISTS (
                   SELECT 1 FROM shield_marks sm
                   WHERE sm.council_code = r.council_code AND sm.local_id = r.local_id)
                 AS masked
          FROM old_rows r
          WHERE r.record IS NOT NULL AND r.national_id IS NOT NULL) o;
    RETURN NULL;
END $$;

-- As in migration 014: the counted values before the statement less those after (as
-- multisets) are no longer counted, those after less those before are; no join of the
-- two transition tables. Each side's counted values are computed once (a CTE named
-- twice is materialised), not once for each set difference.
CREATE OR REPLACE FUNCTION term_changes_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH before AS (
        SELECT given_name, family_name,
               CASE WHEN masked THEN NULL ELSE postcode END AS postcode,
               CASE WHEN masked THEN NULL ELSE address_line END AS address_line,
               nhs_number, dob
        FROM (SELECT r.*, r.shielded OR EXISTS (
                       SELECT 1 FROM shield_marks sm
                       WHERE sm.council_code = r.council_code AND sm.local_id = r.local_id)
                     AS masked
              FROM old_rows r
              WHERE r.record IS NOT NULL AND r.national_id IS NOT NULL) o
    ), after AS (
        SELECT given_name, family_name,
               CASE WHEN masked THEN NULL ELSE postcode END AS postcode,
               CASE WHEN masked THEN NULL ELSE address_line END AS address_line,
               nhs_number, dob
        FROM (SELECT r.*, r.shielded OR EXISTS (
                       SELECT 1 FROM shield_marks sm
                       WHERE sm.council_code = r.council_code AND sm.local_id = r.local_id)
                     AS masked
              FROM new_rows r
              WHERE r.record IS NOT NULL AND r.national_id IS NOT NULL) n
    )
    INSERT INTO term_changes (given_name, family_name, postcode, address_line,
                              nhs_number, person, delta)
    SELECT g, f, p, a, nhs, term_person(g, f, d), -1::smallint FROM (
        SELECT * FROM before EXCEPT ALL SELECT * FROM after
    ) AS gone(g, f, p, a, nhs, d)
    UNION ALL
    SELECT g, f, p, a, nhs, term_person(g, f, d), 1::smallint FROM (
        SELECT * FROM after EXCEPT ALL SELECT * FROM before
    ) AS came(g, f, p, a, nhs, d);
    RETURN NULL;
END $$;

-- Nothing calls them now: one way to ask, the one that costs nothing.
DROP FUNCTION term_location(text, text, boolean, text);
DROP FUNCTION term_masked(text, text, boolean);
