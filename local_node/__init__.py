"""A council's local node: the children's index, feeds, the outbox and the publisher."""
