"""Signed checkpoints (server_common.audit.checkpoint): the C2SP signed-note text,
its key hash, and every way a note can fail to open."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from protocol import keys
from server_common.audit.checkpoint import (
    CheckpointError,
    checkpoint_text,
    key_hash,
    open_note,
    sign,
)
from server_common.audit.merkle import EMPTY_ROOT

WHEN = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
ROOT = hashlib.sha256(b"root").digest()


def test_text_and_signature_line_follow_c2sp() -> None:
    key = keys.generate()
    signed = sign(key, "signpost-hub/audit", 42, ROOT, WHEN)
    text = checkpoint_text("signpost-hub/audit", 42, ROOT, WHEN)
    assert text == ("signpost-hub/audit\n42\n" + base64.b64encode(ROOT).decode() +
                    "\ntime 2026-11-26T09:30:00.000000Z\n")
    body, sig_line = signed.note.split("\n\n")
    assert body + "\n" == text
    prefix = "\u2014 signpost-hub/audit "
    assert sig_line.startswith(prefix) and sig_line.endswith("\n")
    blob = base64.b64decode(sig_line[len(prefix):])
    raw = keys.raw_public(key.public_key())
    assert blob[:4] == hashlib.sha256(b"signpost-hub/audit\n\x01" + raw).digest()[:4]
    assert blob[:4] == key_hash("signpost-hub/audit", key.public_key())
    assert keys.verify(key.public_key(), blob[4:], text.encode())
    opened = open_note(signed.note, [keys.generate().public_key(), key.public_key()])
    assert (opened.size, opened.root, opened.time) == (42, ROOT, WHEN)


def test_other_signers_lines_are_skipped() -> None:
    key, witness = keys.generate(), keys.generate()
    note = sign(key, "signpost-hub/audit", 0, EMPTY_ROOT, WHEN).note
    other = sign(witness, "witness.example", 0, EMPTY_ROOT, WHEN).note.split("\n\n")[1]
    body, ours = note.split("\n\n")
    assert open_note(f"{body}\n\n{other}{ours}", [key.public_key()]).size == 0


@pytest.mark.parametrize("change", [
    lambda n: n.replace("\n42\n", "\n43\n"),                 # another size
    lambda n: n.replace("time 2026", "time 2027"),           # another time
    lambda n: n.replace("signpost-hub/audit\n", "other-log\n", 1),  # another origin
    lambda n: n.replace("\n\n", "\n"),                        # no signature block
    lambda n: n[:-1],                                         # no final newline
    lambda n: n.replace("\u2014", "-"),                      # not a signature line
])
def test_a_changed_note_does_not_open(change: Callable[[str], str]) -> None:
    key = keys.generate()
    note = sign(key, "signpost-hub/audit", 42, ROOT, WHEN).note
    with pytest.raises(CheckpointError):
        open_note(change(note), [key.public_key()])


def test_bad_origins_are_refused() -> None:
    for origin in ("", "two words", "a+b"):
        with pytest.raises(ValueError):
            checkpoint_text(origin, 1, ROOT, WHEN)
