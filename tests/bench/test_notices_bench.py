"""``python -m bench.notices`` runs end to end, small: council B's bulk load makes
notices only about true movers, and movers timed from publish to email all arrive.
(No timing is judged: the figures are the benchmark's.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

CREATED = re.compile(r"^notices created: (\d+) from (\d+) changed records .*: "
                     r"([\d,]+) notices/s, ([\d,]+) changes/s$", re.M)
TOLD = re.compile(r"^movers told: (\d+) of (\d+) \(recall ([\d.]+)\); "
                  r"notices about a child who did not move: (\d+)$", re.M)
DELAY = re.compile(r"^publish → email: (\d+) movers: p50 ([\d.]+) s, p95 ([\d.]+) s, "
                   r"max ([\d.]+) s$", re.M)


@pytest.mark.timeout(300)
def test_notices_bench_counts_only_true_movers_and_times_emails() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.notices", "--children", "200", "--delays", "2"],
        capture_output=True, text=True, env=os.environ, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    created, told, delay = (CREATED.search(out.stdout), TOLD.search(out.stdout),
                            DELAY.search(out.stdout))
    assert created and told and delay, out.stdout
    assert int(created[1]) > 0 and int(created[2]) > 0
    movers_told, movers, _, wrong = told.groups()
    assert wrong == "0", out.stdout  # nobody who did not move is the subject of a notice
    assert 0 < int(movers_told) <= int(movers)
    # each told mover is told to both councils (two notices), never more
    assert int(created[1]) == 2 * int(movers_told)
    assert int(delay[1]) == 2 and 0 < float(delay[2]) <= float(delay[4]) < 60
