"""A short, seeded fault run (the long ones are ``make soak``): two councils publish to
a hub process through a proxy that drops, delays, truncates and duplicates requests
and cuts the link, while the hub, a publisher and PostgreSQL itself are each
SIGKILLed once mid-work and practitioners search. Afterwards the hub holds exactly
every node's projection (nothing lost, nothing applied twice, no batch half-applied,
the same batch bytes on both sides), resolution is complete, the audit log verifies
and no request got a 500. The hub's grouping of records into national children is
then compared with a fault-free resolution of the same batches
(``bench.chaos.reference``): pairs sharing an NHS number grouped identically, every
batch with the same per-op results, other pairs within the stated bound.

``SIGNPOST_FAULT_SEED=N`` replays another seed; the seed is printed either way.
"""

from __future__ import annotations

import os

import pytest

from bench.chaos.proxy import FAULTS
from bench.chaos.run import Plan, fault_run


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_seeded_fault_run() -> None:
    seed = int(os.environ.get("SIGNPOST_FAULT_SEED", "20261126"))
    print(f"fault run seed {seed} (SIGNPOST_FAULT_SEED={seed} replays it)")
    report = await fault_run(Plan(seed=seed, children=250, duration=24, kills=3, cuts=1))
    assert report.verification.problems == []
    assert report.verification.lost == 0
    assert report.internal_errors == 0, report.statuses
    resolution = report.resolution
    print(resolution.line(), resolution.examples)
    assert resolution.problems == []
    assert resolution.records > 400 and resolution.nhs_pairs > 10
    assert resolution.nhs_differences == 0
    # the run really was hurt: every kind of victim died once, the link was cut,
    # and the proxy injected faults into the node's traffic
    assert {k: report.faults[k] for k in ("kill_hub", "kill_node", "kill_postgres")} == \
        {"kill_hub": 1, "kill_node": 1, "kill_postgres": 1}
    assert report.faults["cut"] == 1
    assert sum(report.faults[f] for f in FAULTS) > 0
    assert report.verification.batches_verified > 5
    assert report.verification.records_compared > 400
