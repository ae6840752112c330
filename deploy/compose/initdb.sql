-- Run once by the postgres image on an empty data directory (compose.yaml): the two
-- councils' databases beside the hub's. Each server applies its own migrations.
CREATE DATABASE signpost_node_e10000011 OWNER signpost;
CREATE DATABASE signpost_node_e10000032 OWNER signpost;
