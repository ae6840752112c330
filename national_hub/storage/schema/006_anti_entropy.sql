-- Anti-entropy (docs/PROTOCOL.md §12.1): the hub must be able to tell a row it holds
-- intact from one damaged after it was applied (restored backup, manual fix, disk).
-- The record bytes carry their own digest; the columns beside them (what search and
-- resolution read) carry a fingerprint written with them. A row is intact when its
-- bytes hash to its digest and its columns still hash to its fingerprint.

ALTER TABLE records ADD COLUMN fingerprint text;

-- json_build_array keeps NULLs and array boundaries unambiguous; dates render as ISO
-- whatever the DateStyle, so the same columns always give the same fingerprint.
CREATE FUNCTION record_fingerprint(given_name text, family_name text, dob date, sex smallint,
                                   postcode text, nhs_number text, upn text, shielded boolean,
                                   other_given_names text, former_family_names text[],
                                   address_line text)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(json_build_array(
        given_name, family_name, dob, sex, postcode, nhs_number, upn, shielded,
        other_given_names, former_family_names, address_line)::text, 'UTF8')), 'hex')
$$;

-- True for a live row whose bytes, digest and columns still agree.
CREATE FUNCTION record_intact(r records) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.record IS NOT NULL
       AND r.digest IS NOT DISTINCT FROM encode(sha256(r.record), 'hex')
       AND r.fingerprint IS NOT DISTINCT FROM record_fingerprint(
               r.given_name, r.family_name, r.dob, r.sex, r.postcode, r.nhs_number, r.upn,
               r.shielded, r.other_given_names, r.former_family_names, r.address_line)
$$;

UPDATE records SET fingerprint = record_fingerprint(
        given_name, family_name, dob, sex, postcode, nhs_number, upn, shielded,
        other_given_names, former_family_names, address_line)
 WHERE record IS NOT NULL;
