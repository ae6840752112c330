"""Every benchmark ``make bench`` runs also runs here at a tiny size, so none can rot
between runs of ``make bench``: ``bench.publish``, ``bench.resolution``,
``bench.search`` and ``bench.anti_entropy`` end to end through their real processes,
each printing its figures. No timing is judged (figures come from the benchmark)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FIGURE = r"\d[\d,]*(\.\d+)?"


def _bench(module: str, *args: str, timeout: float = 500) -> str:
    out = subprocess.run([sys.executable, "-m", module, *args],
                         capture_output=True, text=True, env=os.environ, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_publish_prints_throughput(tmp_path: Path) -> None:
    out = _bench("bench.publish", "--children", "300", "--batch-size", "100",
                 "--data-dir", str(tmp_path / "d"))
    assert re.search(r"records applied\s+299 in 3 batches", out), out
    assert re.search(rf"applied and resolved {FIGURE} records/s", out), out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_intake_prints_hub_intake(tmp_path: Path) -> None:
    out = _bench("bench.intake", "--children", "300", "--batch-size", "100",
                 "--data-dir", str(tmp_path / "d"))
    applied = re.search(r"records applied\s+([\d,]+) of ([\d,]+) in (\d+) batches", out)
    assert applied, out
    assert applied[1] == applied[2] and int(applied[3]) >= 3, out  # every record applied
    assert re.search(rf"hub intake\s+{FIGURE} records/s", out), out
    cpu = re.search(rf"CPU a record\s+(?P<all>{FIGURE}) µs \(hub (?P<hub>{FIGURE}) µs"
                    rf" \+ postgresql (?P<pg>{FIGURE}) µs", out)
    assert cpu, out
    # the hub decodes, keys and writes every record; its server stores them
    assert all(float(cpu[part].replace(",", "")) > 0 for part in ("all", "hub", "pg")), out
    assert re.search(rf"record decoding\s+reference {FIGURE} µs, compiled {FIGURE} µs", out), out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_intake_profile_splits_a_record_time(tmp_path: Path) -> None:
    out = _bench("bench.intake_profile", "--children", "300", "--batch-size", "100",
                 "--data-dir", str(tmp_path / "d"))
    assert re.search(rf"total wall\s+{FIGURE} s", out), out
    for part in ("validating the ops", "RecordStore.upsert", "ResolutionStore.replace_keys"):
        row = re.search(rf"{re.escape(part)}.*?\s+(?P<wall>{FIGURE})\s+(?P<hub>{FIGURE})"
                        rf"\s+(?P<pg>{FIGURE})$", out, re.MULTILINE)
        assert row, (part, out)
        assert float(row["wall"]) > 0 and float(row["hub"]) > 0, (part, out)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_resolution_prints_precision_and_recall(tmp_path: Path) -> None:
    splink = importlib.util.find_spec("splink") is not None
    out = _bench("bench.resolution", "--children", "150", "--councils", "2", "--batch-size", "200",
                 "--splink-u-pairs", "20000", "--splink" if splink else "--no-splink",
                 "--data-dir", str(tmp_path / "d"))
    row = re.search(rf"signpost: hub intake \+ resolution \(default\)\s+({FIGURE})\s+"
                    rf"({FIGURE})\s+({FIGURE})\s+(\d+)\s+(\d+)", out)
    assert row, out
    precision, recall = float(row.group(1)), float(row.group(3))
    assert precision >= 0.99 and recall > 0.5, out  # a tiny population, real figures
    assert row.group(8) == "0", out  # no twins merged
    assert "resolved in bulk beside the load" in out  # by links drain --until-idle
    if splink:
        assert "splink 5: train+predict+cluster" in out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_resolution_decides_the_same_under_generic_plans(tmp_path: Path) -> None:
    """``--plan-cache-mode force_generic_plan``: every connection of the hub's database
    plans each statement as a connection does after five runs of it. The links must not
    depend on the plan."""
    args = ("bench.resolution", "--children", "300", "--councils", "2", "--batch-size", "200",
            "--no-splink", "--serial")  # drained after the load: chunks do not race it
    rows = {}
    for mode in ("auto", "force_generic_plan"):
        out = _bench(*args, "--plan-cache-mode", mode, "--data-dir", str(tmp_path / mode))
        assert f"signpost (plan_cache_mode {mode}):" in out, out
        rows[mode] = [line[:len(line) - 20] for line in out.splitlines()
                      if line.startswith("signpost: ")]  # figures, not seconds
        assert len(rows[mode]) == 2, out
    assert rows["auto"] == rows["force_generic_plan"]


def _digests_under_each_plan_mode(tmp_path: Path, module: str, args: tuple[str, ...],
                                  digest: str) -> dict[str, tuple[str, str]]:
    """Run ``module`` under ``auto`` and ``force_generic_plan``; by mode, the hex digest
    the ``digest`` regex (its first group) found in the output, and the output."""
    found = {}
    for mode in ("auto", "force_generic_plan"):
        out = _bench(module, *args, "--plan-cache-mode", mode,
                     "--data-dir", str(tmp_path / mode))
        assert f"plan_cache_mode {mode})" in out, out
        match = re.search(digest, out, re.MULTILINE)
        assert match, out
        found[mode] = (match[1], out)
    return found


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ingest_loads_the_same_under_generic_plans(tmp_path: Path) -> None:
    """``bench.ingest --plan-cache-mode force_generic_plan``: the node's connections plan
    each statement as after five runs of it. What the load leaves to publish (the
    outbox) must not depend on the plan."""
    runs = _digests_under_each_plan_mode(tmp_path, "bench.ingest", ("--children", "300"),
                                         r"^outbox digest ([0-9a-f]{64})$")
    assert runs["auto"][0] == runs["force_generic_plan"][0]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_intake_holds_the_same_under_generic_plans(tmp_path: Path) -> None:
    """``bench.intake --plan-cache-mode force_generic_plan``: the hub's connections plan
    each statement as after five runs of it (more than five batches, so each intake
    statement runs more than five times). What the hub holds must not depend on it."""
    runs = _digests_under_each_plan_mode(
        tmp_path, "bench.intake", ("--children", "300", "--batch-size", "40"),
        r"^records digest\s+([0-9a-f]{64})$")
    for _, out in runs.values():
        applied = re.search(r"records applied\s+([\d,]+) of ([\d,]+) in (\d+) batches", out)
        assert applied and applied[1] == applied[2] and int(applied[3]) > 5, out
    assert runs["auto"][0] == runs["force_generic_plan"][0]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_search_prints_latency_and_rate(tmp_path: Path) -> None:
    args = ("--children", "500", "--clients", "2", "--hubs", "1", "--seconds", "2",
            "--warmup", "0.5", "--data-dir", str(tmp_path / "d"))
    out = _bench("bench.search", *args, "--reuse")  # nothing to reuse yet: it loads
    assert "loaded the hub" in out, out
    assert re.search(r"errors 0\b", out), out
    assert re.search(rf"throughput\s+{FIGURE} searches/s", out), out
    assert re.search(rf"p99 {FIGURE} ms", out), out
    assert "child first 100.0%" in out, out  # each search finds its child first
    assert re.search(rf"CPU per search hub {FIGURE} ms, PostgreSQL {FIGURE} ms", out), out
    again = _bench("bench.search", *args, "--reuse")  # the same hub, searched again
    assert "reusing the hub" in again and "loaded the hub" not in again, again
    assert re.search(r"errors 0\b", again) and "child first 100.0%" in again, again


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_anti_entropy_prints_its_cost(tmp_path: Path) -> None:
    out = _bench("bench.anti_entropy", "--records", "300", "--damage", "5",
                 "--data-dir", str(tmp_path / "d"))
    # every damaged row lies in a bucket the comparison found differing
    found = re.search(r"5 damaged rows\s+→ (\d+) differing buckets", out)
    assert found and 1 <= int(found.group(1)) <= 5, out
