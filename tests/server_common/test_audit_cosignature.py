"""C2SP cosignature/v1 lines (server_common.audit.cosignature): what a witness signs and
how the log checks it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from protocol import keys
from server_common.audit.checkpoint import Checkpoint, CheckpointError, sign
from server_common.audit.cosignature import cosign, open_cosignature, signed_message

WHEN = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def checkpoint() -> Checkpoint:
    return sign(keys.generate(), "signpost-hub/audit", 7, bytes(range(32)), WHEN)


def test_a_cosignature_verifies_and_carries_its_time(checkpoint: Checkpoint) -> None:
    node = keys.generate()
    line = cosign(node, "E10000011", checkpoint, datetime(2026, 12, 5, 9, 1, 30, tzinfo=UTC))
    assert line.startswith("\u2014 E10000011 ") and line.endswith("\n")
    assert open_cosignature(line, "E10000011", node.public_key(), checkpoint) == datetime(
        2026, 12, 5, 9, 1, 30, tzinfo=UTC)
    # the message is the C2SP one: header, time, then the checkpoint body itself
    assert signed_message(checkpoint, 1).startswith(
        b"cosignature/v1\ntime 1\nsignpost-hub/audit\n7\n")


def test_a_cosignature_is_refused_for_anything_else(checkpoint: Checkpoint) -> None:
    node, other = keys.generate(), keys.generate()
    line = cosign(node, "E10000011", checkpoint, WHEN)
    with pytest.raises(CheckpointError, match="another key"):
        open_cosignature(line, "E10000011", other.public_key(), checkpoint)
    with pytest.raises(CheckpointError, match="names"):
        open_cosignature(line, "E10000032", node.public_key(), checkpoint)
    forged = sign(keys.generate(), "signpost-hub/audit", 7, bytes(32), WHEN)
    with pytest.raises(CheckpointError, match="does not verify"):
        open_cosignature(line, "E10000011", node.public_key(), forged)
    # the time inside is signed too
    name, blob = line[2:-1].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[11] ^= 1
    moved = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        open_cosignature(moved, "E10000011", node.public_key(), checkpoint)
    for bad in ("", "\u2014 E10000011 !!!\n", "\u2014 E10000011 AAAA\n", line + line,
                line.rstrip("\n")):
        with pytest.raises(CheckpointError):
            open_cosignature(bad, "E10000011", node.public_key(), checkpoint)
