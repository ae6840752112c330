"""Fault injection and soak runs against a federation of real processes.

``proxy`` (a seeded fault-injecting HTTP proxy), ``postgres`` (a PostgreSQL of the
run's own that can be SIGKILLed), ``federation`` (hub, publishers, a node's server, supervisor),
``searchers`` (practitioner load), ``checks`` (hub against nodes after a run),
``run`` (one seeded fault run), ``load`` (the load run) and the fuzzers: ``fuzz``
(what a fuzz run counts), ``fuzz_batch``, ``fuzz_search`` (the hub's or, with
``fuzz_node``, a council node's practitioner endpoints) and ``fuzz_run`` (the soak's
fuzz phase), ``reference`` (the hub's resolution against a fault-free replay)
and ``reaper`` (nothing outlives a stopped run). ``python -m bench.soak`` drives the long runs;
``tests/test_fault_injection.py``, ``tests/national_hub/test_*_fuzz.py`` and
``tests/local_node/test_practitioner_fuzz.py`` short ones.
"""
