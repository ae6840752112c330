"""``python -m bench.freshness`` runs end to end, small: a council's surname changes,
each loaded with ``local-node ingest``, reach a practitioner's search at the hub through
the real publisher, hub and resolver, in a quiet phase and while another council's
initial load is being published; every change is seen and timed. (No timing is
judged: the figures are the benchmark's.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

PHASE = re.compile(r"^(quiet|bulk)\s+(\d+) changes: p50 ([\d.]+) s, p95 ([\d.]+) s, "
                   r"max ([\d.]+) s \(target", re.M)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_freshness_times_every_change_in_both_phases() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.freshness", "--children", "300",
         "--bulk-children", "10000", "--changes", "3"],
        capture_output=True, text=True, env=os.environ, timeout=560)
    assert out.returncode == 0, out.stderr[-3000:]
    phases = {m[0]: m[1:] for m in PHASE.findall(out.stdout)}
    assert set(phases) == {"quiet", "bulk"}, out.stdout
    assert int(phases["quiet"][0]) == 3
    assert int(phases["bulk"][0]) >= 1  # at least one change while the load was queued
    assert "never seen" not in out.stdout
    assert all(0 < float(v) < 60 for figures in phases.values() for v in figures[1:])
