-- Which matching model decided each record's national id: the version the
-- resolver scored it with when it last placed the record (linked to a partner's child,
-- or a child of its own because nothing linked), "+across-councils" when the deciding
-- pair was of two councils. NULL until the record is resolved (and for records
-- resolved before this column existed, until they are resolved again).
ALTER TABLE records ADD COLUMN model_version text;
