"""Benchmarks run by ``make bench``; each prints its figures (never asserted in tests)."""
