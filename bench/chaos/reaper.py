"""Nothing a soak run started outlives it, even when the run itself is stopped.

A run's own ``finally`` blocks stop its hubs, publishers and PostgreSQL when it ends
normally or on Ctrl-C (``asyncio.run`` cancels the run, which unwinds). They do not
run on SIGTERM or SIGHUP, which end Python at once; and PostgreSQL, which ``pg_ctl``
starts in a session of its own, is not even a child of the run. So what a run starts
is registered here, and :func:`reap` ends it all: every descendant process of this
one (servers, publishers, an ``ingest`` in progress), every registered PostgreSQL
(its postmaster and backends, found through ``postmaster.pid``), and every
registered temporary folder. :func:`install` makes SIGTERM and SIGHUP reap and then
die of the signal as before, and reaps at exit whatever a Ctrl-C's unwinding left.
A SIGKILL of the run cannot be caught: what it started is left running.

Example::

    reaper.install()                 # once, in the command's main
    reaper.track_postgres(data_dir)  # KillablePostgres does this
    reaper.track_dir(workdir)
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
from pathlib import Path
from types import FrameType

import psutil

_postgres: set[Path] = set()
_dirs: set[Path] = set()
_installed = False


def track_postgres(data_dir: Path) -> None:
    _postgres.add(data_dir)


def untrack_postgres(data_dir: Path) -> None:
    _postgres.discard(data_dir)


def track_dir(path: Path) -> None:
    _dirs.add(path)


def untrack_dir(path: Path) -> None:
    _dirs.discard(path)


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """The postmaster of ``data_dir`` and its children (backends, checkpointer…)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]
    except (OSError, ValueError, psutil.Error):
        return []


def kill_all(victims: list[psutil.Process]) -> None:
    """SIGKILL them all at once, then wait for them."""
    for proc in victims:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=10)


def reap() -> None:
    """SIGKILL every descendant and every registered PostgreSQL; remove the folders."""
    try:
        kill_all(psutil.Process().children(recursive=True))
    except psutil.Error:
        pass
    for data_dir in list(_postgres):
        kill_all(postgres_processes(data_dir))
        _postgres.discard(data_dir)
    for path in list(_dirs):
        shutil.rmtree(path, ignore_errors=True)
        _dirs.discard(path)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    reap()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # die of it, as the sender expects


def install() -> None:
    """Reap on SIGTERM and SIGHUP (then die of the signal) and at exit."""
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(reap)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
