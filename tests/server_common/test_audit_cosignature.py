"""C2SP cosignature/v1 lines (server_common.audit.cosignature): what a witness signs and
how the log checks it."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import keys
from server_common.audit.checkpoint import Checkpoint, CheckpointError, sign
from server_common.audit.cosignature import cosign, open_cosignature, signed_message
from server_common.audit.cosigned_rows import cosignature_problems
from server_common.audit.witness_store import Cosigned

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


# --- rows as audit verify checks them (server_common.audit.cosigned_rows) ----------


def _row(key: Ed25519PrivateKey, checkpoint: Checkpoint, when: datetime,
         witness: str = "E10000011") -> Cosigned:
    return Cosigned(witness, checkpoint.size, checkpoint.root, keys.key_id(key.public_key()),
                    cosign(key, witness, checkpoint, when), when, when)


def test_rows_a_witness_made_in_order_verify() -> None:
    hub, node = keys.generate(), keys.generate()
    seven = sign(hub, "signpost-hub/audit", 7, bytes(range(32)), WHEN)
    nine = sign(hub, "signpost-hub/audit", 9, bytes(32), WHEN)
    rows = [_row(node, seven, WHEN), _row(node, nine, WHEN.replace(minute=5))]
    known = {keys.key_id(node.public_key()): ("E10000011", keys.raw_public(node.public_key()))}
    assert cosignature_problems(rows, {7: seven, 9: nine}, known) == []
    # the older row's checkpoint gone (an accepted incident): only the newest must verify
    assert cosignature_problems(rows, {9: nine}, known) == []
    assert cosignature_problems(rows, {7: seven}, known) == [(9, (
        "witness E10000011's newest cosignature is of a checkpoint the hub does not hold: "
        "it cannot be checked (checkpoints removed, or the row forged)"))]


def test_a_row_older_than_the_one_before_it_is_reported() -> None:
    hub, node = keys.generate(), keys.generate()
    seven = sign(hub, "signpost-hub/audit", 7, bytes(range(32)), WHEN)
    nine = sign(hub, "signpost-hub/audit", 9, bytes(32), WHEN)
    rows = [_row(node, nine, WHEN.replace(minute=5)), _row(node, seven, WHEN)]
    known = {keys.key_id(node.public_key()): ("E10000011", keys.raw_public(node.public_key()))}
    assert cosignature_problems(rows, {7: seven, 9: nine}, known) == [(7, (
        "witness E10000011's cosignature is older than one it made before it: an old "
        "cosignature copied forward"))]


def test_a_row_by_another_councils_key_or_with_another_root_is_reported() -> None:
    hub, node, other = keys.generate(), keys.generate(), keys.generate()
    seven = sign(hub, "signpost-hub/audit", 7, bytes(range(32)), WHEN)
    known = {keys.key_id(node.public_key()): ("E10000011", keys.raw_public(node.public_key())),
             keys.key_id(other.public_key()): ("E10000032", keys.raw_public(other.public_key()))}
    by_other = _row(other, seven, WHEN)
    assert [why for _, why in cosignature_problems([by_other], {7: seven}, known)] == [
        f"witness E10000011's cosignature does not verify (key {by_other.kid!r} is not one "
        "enrolled for E10000011): the council did not make it"]
    moved = replace(_row(node, seven, WHEN), root_hash=bytes(32))
    assert [why for _, why in cosignature_problems([moved], {7: seven}, known)] == [
        "witness E10000011's cosignature does not verify (its root is not the checkpoint's): "
        "the council did not make it"]
