"""The hub's signing key is created once, however many hub processes start together.

Two ``national-hub serve`` processes started on a fresh directory both found no key
file: one could read the other's half-written PEM and fail to start, or write its own
key over the other's and then sign receipts and checkpoints with a key no file holds.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from national_hub.app import load_or_create_hub_key
from protocol import keys

_PROCESSES = 6


def _start_hub(path: str, barrier: Barrier, answers: multiprocessing.SimpleQueue[str]) -> None:
    barrier.wait()  # every process looks for the key at the same moment
    try:
        answers.put(keys.key_id(load_or_create_hub_key(Path(path)).public_key()))
    except Exception as exc:  # reported to the test, not lost in a child's stderr
        answers.put(f"failed: {exc!r}")


def test_hub_processes_starting_together_share_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        path = tmp_path / str(attempt) / "hub_key.pem"
        barrier = context.Barrier(_PROCESSES)
        answers: multiprocessing.SimpleQueue[str] = context.SimpleQueue()
        starters = [context.Process(target=_start_hub, args=(str(path), barrier, answers))
                    for _ in range(_PROCESSES)]
        for p in starters:
            p.start()
        for p in starters:
            p.join(60)
        kids = {answers.get() for _ in starters}
        on_disk = keys.key_id(keys.load_private_key(path).public_key())
        assert kids == {on_disk}, f"attempt {attempt}: {kids} against {on_disk} on disk"
        public = keys.load_public_key(keys.public_path_for(path).read_bytes())
        assert keys.key_id(public) == on_disk
        assert path.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_key_whose_public_half_was_never_written_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "hub_key.pem"
    first = load_or_create_hub_key(path)
    keys.public_path_for(path).unlink()  # the creator stopped between the two files
    again = load_or_create_hub_key(path)
    assert keys.key_id(again.public_key()) == keys.key_id(first.public_key())
    public = keys.load_public_key(keys.public_path_for(path).read_bytes())
    assert keys.key_id(public) == keys.key_id(first.public_key())
