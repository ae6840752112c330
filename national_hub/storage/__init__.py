"""The only place the hub's SQL lives: one store per domain."""
