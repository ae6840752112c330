"""Fault injection and soak runs against a federation of real processes.

``proxy`` (a seeded fault-injecting HTTP proxy), ``postgres`` (a PostgreSQL of the
run's own that can be SIGKILLed), ``federation`` (hub, publishers, supervisor),
``searchers`` (practitioner load), ``checks`` (hub against nodes after a run) and
``run`` (one seeded fault run). ``python -m bench.soak`` drives the long runs;
``tests/test_fault_injection.py`` a short one.
"""
