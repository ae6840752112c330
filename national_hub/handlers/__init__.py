"""One thin handler per endpoint: parse, authenticate (in one shared place), hand off, return."""
