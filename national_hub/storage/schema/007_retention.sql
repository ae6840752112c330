-- Retention (docs/design.md §3): the day the hub archived a record (the child turned 18, 25
-- for a care leaver with consent, or a year after death). An archived record is kept,
-- but is no longer for practitioners' eyes; six years on the hub purges it to a
-- tombstone, whether or not the council's own delete has arrived yet.

ALTER TABLE records ADD COLUMN archived_on date;
