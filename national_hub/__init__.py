"""The national hub: council registry, signed batch intake, minimal records,
national ids, and (in later issues) search, audit and operations."""
