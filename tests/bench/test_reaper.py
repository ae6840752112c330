"""A soak run stopped from outside leaves nothing behind: started as ``python -m
bench.soak`` (a short fault run), let run until its PostgreSQL, hub replicas and
publishers are up, then sent SIGTERM (what a supervisor or ``kill`` sends) or SIGINT
(Ctrl-C). Afterwards every process it had started, the PostgreSQL that ``pg_ctl``
detached into a session of its own included, is gone, and so is PostgreSQL's folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.chaos.reaper import postgres_processes

ROOT = Path(__file__).resolve().parents[2]


def _running(soak: psutil.Process) -> list[psutil.Process]:
    """The soak's descendants once both hub replicas and both publishers are up."""
    children = soak.children(recursive=True)
    commands = [" ".join(c.cmdline()) for c in children if c.is_running()]
    hubs = sum("national-hub serve" in c for c in commands)
    publishers = sum("local-node publish" in c for c in commands)
    return children if hubs == 2 and publishers == 2 else []


@pytest.mark.slow
@pytest.mark.timeout(480)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_soak_leaves_no_process_or_folder(signum: signal.Signals) -> None:
    with subprocess.Popen(
            [sys.executable, "-m", "bench.soak", "--seeds", "1", "--first-seed", "3",
             "--fault-duration", "120", "--fault-children", "40", "--skip-fuzz",
             "--skip-load"],
            cwd=ROOT, env=os.environ | {"PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        try:
            _stop(proc, signum)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _stop(proc: subprocess.Popen[str], signum: signal.Signals) -> None:
    assert proc.stdout is not None
    data_dir = None
    for line in proc.stdout:
        if "PostgreSQL of the run: " in line:
            data_dir = Path(line.split("PostgreSQL of the run: ", 1)[1].strip())
            break
    assert data_dir is not None, "the soak never started its PostgreSQL"
    soak = psutil.Process(proc.pid)
    deadline = time.monotonic() + 180
    while not (children := _running(soak)):
        assert time.monotonic() < deadline and proc.poll() is None, "never got going"
        time.sleep(0.5)
    postgres = postgres_processes(data_dir)
    assert postgres, "no postmaster found"
    started = children + postgres
    proc.send_signal(signum)
    # a loaded machine (a whole suite beside it) has taken over two minutes to stop it
    proc.communicate(timeout=240)
    if signum == signal.SIGTERM:
        assert proc.returncode == -signal.SIGTERM  # it still dies of the signal
    _, alive = psutil.wait_procs(started, timeout=30)
    assert alive == [], [" ".join(p.cmdline()) for p in alive]
    assert not data_dir.parent.exists()
