-- Incomplete rows: a source row missing its given name, family name or
-- date of birth, or with an invalid one, loads without that field rather than being
-- refused, so the child is in its council's index and found by what it has.
-- ``incomplete`` says which of the child's fields no source supplies, and why
-- ("dob: not a real date: '2015-02-30'"); NULL when the child is complete.

ALTER TABLE children ALTER COLUMN given_name DROP NOT NULL,
                     ALTER COLUMN family_name DROP NOT NULL,
                     ALTER COLUMN dob DROP NOT NULL,
                     ADD COLUMN incomplete text;
CREATE INDEX children_incomplete ON children (local_id) WHERE incomplete IS NOT NULL;
