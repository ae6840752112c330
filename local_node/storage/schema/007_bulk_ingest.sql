-- Local ingest in bulk (docs/feeds.md): a chunk writes its source rows first, decides who
-- each child is from all of its rows, and writes each child once; a new child's source
-- rows name it before it is written, so their reference to it is checked when the
-- chunk's transaction commits (it still is checked: nothing is ever left dangling).
ALTER TABLE source_records
    ALTER CONSTRAINT source_records_local_id_fkey DEFERRABLE INITIALLY IMMEDIATE;
