"""Keys a server makes on its first start are made once, however many processes start
together: the hub's signing key and the accounts secret (which seals TOTP seeds).

Two ``national-hub serve`` processes started on a fresh directory both found no key
file: one could read the other's half-written PEM and fail to start, or write its own
key over the other's and then sign receipts and checkpoints with a key no file holds.
The accounts secret was created exclusively, but a second process could read it empty
before the first had written it, and refuse to start.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path

from national_hub.app import load_or_create_hub_key
from protocol import keys
from server_common.accounts.seeds import load_or_create_key

_PROCESSES = 6


def _start_hub(path: str, barrier: Barrier, answers: multiprocessing.SimpleQueue[str]) -> None:
    barrier.wait()  # every process looks for the key at the same moment
    try:
        answers.put(keys.key_id(load_or_create_hub_key(Path(path)).public_key()))
    except Exception as exc:  # reported to the test, not lost in a child's stderr
        answers.put(f"failed: {exc!r}")


def _start_accounts(path: str, barrier: Barrier,
                    answers: multiprocessing.SimpleQueue[str]) -> None:
    barrier.wait()
    try:
        answers.put(load_or_create_key(Path(path)).hex())
    except Exception as exc:
        answers.put(f"failed: {exc!r}")


def _race(target: Callable[[str, Barrier, multiprocessing.SimpleQueue[str]], None],
          path: Path) -> set[str]:
    """What each of several processes, started at one moment, got from ``target``."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(_PROCESSES)
    answers: multiprocessing.SimpleQueue[str] = context.SimpleQueue()
    starters = [context.Process(target=target, args=(str(path), barrier, answers))
                for _ in range(_PROCESSES)]
    for p in starters:
        p.start()
    for p in starters:
        p.join(60)
    return {answers.get() for _ in starters}


def test_hub_processes_starting_together_share_one_key(tmp_path: Path) -> None:
    for attempt in range(5):
        path = tmp_path / str(attempt) / "hub_key.pem"
        kids = _race(_start_hub, path)
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


def test_servers_starting_together_share_one_accounts_secret(tmp_path: Path) -> None:
    for attempt in range(5):
        path = tmp_path / str(attempt) / "accounts_secret.key"
        secrets = _race(_start_accounts, path)
        assert secrets == {load_or_create_key(path).hex()}, f"attempt {attempt}: {secrets}"
        assert path.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
