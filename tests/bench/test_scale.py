"""``python -m bench.scale`` runs end to end at tiny stages: one hub grown twice, each
stage searched over HTTP and a new council published through the real node, hub and
resolver; its table has one row per stage with every figure positive, the children
held grow as asked, and the new councils' movers were linked to children already in
the hub. (No timing is judged: figures come from the benchmark itself.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import free_port

ROW = re.compile(r"^\s*\d[\d,]*(\s+[\d,]+(\.\d+)?)+\s*$")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scale_prints_one_row_per_stage_with_positive_figures(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--stages", "2000,5000",
         "--publish-children", "300", "--clients", "4", "--hubs", "1", "--seconds", "2",
         "--warmup", "0.5", "--port", str(free_port()), "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, env=os.environ, timeout=560)
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout.split("== scale:")[1]
    header, *lines = table.splitlines()[1:]
    assert header.split()[0] == "children"
    rows = [line for line in lines if ROW.match(line)]
    assert len(rows) == 2, table
    figures = [[float(v.replace(",", "")) for v in row.split()] for row in rows]
    # the last column is the load average, which an idle machine may show as 0.0
    assert all(v > 0 for row in figures for v in row[:-1]), table
    assert [row[0] for row in figures] == [2000, 5000]  # children held at each stage
    assert "children ×2.5 → records" in table
    linked = [int(m.replace(",", "")) for m in
              re.findall(r"movers\s+([\d,]+) of the new council", out.stdout)]
    assert len(linked) == 2 and all(n > 0 for n in linked), out.stdout
