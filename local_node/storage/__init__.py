"""The only place the node's SQL lives: one store per domain."""
