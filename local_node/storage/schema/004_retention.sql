-- Retention (docs/design.md §3): the day a child's record was archived (the child turned 18,
-- 25 for a care leaver with consent, or a year after death). An archived child is
-- out of practitioner search; it is purged, and withdrawn from the hub, six years on.

ALTER TABLE children ADD COLUMN archived_on date;
