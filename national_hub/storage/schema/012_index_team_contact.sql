-- How to reach each council's index team (docs/pages.md): a shielded child's page tells a
-- practitioner to contact that team, and now shows its phone and email. Set by
-- `national-hub councils set-contact`; NULL until an operator sets them.
ALTER TABLE councils
    ADD COLUMN index_team_email text CHECK (length(index_team_email) <= 254),
    ADD COLUMN index_team_phone text CHECK (length(index_team_phone) <= 20);
