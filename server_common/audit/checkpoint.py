"""Signed checkpoints of the audit log: C2SP ``tlog-checkpoint`` in a ``signed-note``.

A checkpoint commits the hub to the tree head of the first ``size`` entries. Its
text (https://c2sp.org/tlog-checkpoint) is::

    signpost-hub/audit                      origin: names this log
    1234                                    tree size, decimal
    <base64 root hash>                      standard base64 of the 32-byte root
    time 2026-11-26T09:30:00.000000Z        extension line: when the hub signed it

and the signed note (https://c2sp.org/signed-note) appends a blank line and one
signature line per signer::

    — <key name> <base64(key hash[4] || Ed25519 signature[64])>

The signature is Ed25519 over the checkpoint text (every byte up to and including
the newline before the blank line). The key hash is the first 4 bytes of
SHA-256(key name || 0x0A || 0x01 || raw 32-byte public key), as signed-note
defines for Ed25519. The key name is the origin. Pure: no database, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server_common.audit.entry import format_time, parse_time
from server_common.audit.merkle import HASH_SIZE

_SIG_PREFIX = "\u2014 "  # an em dash and a space
_ED25519 = b"\x01"


class CheckpointError(ValueError):
    """The text is not a well-formed checkpoint, or no trusted signature verifies."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    time: datetime
    note: str  # the whole signed note, exactly as signed and stored

    def to_dict(self) -> dict[str, object]:
        return {"origin": self.origin, "tree_size": self.size,
                "root_hash": base64.b64encode(self.root).decode("ascii"),
                "time": format_time(self.time), "note": self.note}


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + _ED25519 + _raw(public_key)).digest()[:4]


def checkpoint_text(origin: str, size: int, root: bytes, when: datetime) -> str:
    if not origin or any(c.isspace() or c == "+" for c in origin):
        raise ValueError(f"checkpoint origin must be non-empty, without spaces or '+': {origin!r}")
    if len(root) != HASH_SIZE or size < 0:
        raise ValueError("a checkpoint needs a size ≥ 0 and a 32-byte root")
    return (f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"
            f"time {format_time(when)}\n")


def sign(key: Ed25519PrivateKey, origin: str, size: int, root: bytes,
         when: datetime) -> Checkpoint:
    text = checkpoint_text(origin, size, root, when)
    signature = key.sign(text.encode("utf-8"))
    blob = base64.b64encode(key_hash(origin, key.public_key()) + signature).decode("ascii")
    return Checkpoint(origin, size, root, when, f"{text}\n{_SIG_PREFIX}{origin} {blob}\n")


def read_note(note: str) -> Checkpoint:
    """Parse a signed checkpoint WITHOUT checking any signature (for serving a stored
    one; a reader must use :func:`open_note`)."""
    return _parse(note)[0]


def _parse(note: str) -> tuple[Checkpoint, str, str]:
    text, sep, signatures = note.partition("\n\n")
    if not sep or not text:
        raise CheckpointError("no blank line between the checkpoint and its signatures")
    text += "\n"
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("a checkpoint has at least origin, size and root lines")
    origin, size_line, root_line, *extensions = lines
    if not (size_line.isascii() and size_line.isdigit()) or (
            size_line != "0" and size_line.startswith("0")):
        raise CheckpointError(f"tree size is not a decimal number: {size_line!r}")
    try:
        root = base64.b64decode(root_line, validate=True)
    except ValueError as exc:
        raise CheckpointError("root hash is not base64") from exc
    if len(root) != HASH_SIZE:
        raise CheckpointError("root hash is not 32 bytes")
    times = [e[5:] for e in extensions if e.startswith("time ")]
    if len(times) != 1:
        raise CheckpointError("a Signpost checkpoint has exactly one 'time' line")
    try:
        when = parse_time(times[0])
    except ValueError as exc:
        raise CheckpointError(f"bad time line: {times[0]!r}") from exc
    if not signatures.endswith("\n"):
        raise CheckpointError("the signature block must end in a newline")
    return Checkpoint(origin, int(size_line), root, when, note), text, signatures


def open_note(note: str, trusted: list[Ed25519PublicKey]) -> Checkpoint:
    """Parse a signed checkpoint and check a signature by one of ``trusted`` (keys of
    the log named by the origin). Raises CheckpointError saying what is wrong."""
    checkpoint, text, signatures = _parse(note)
    origin = checkpoint.origin
    wanted = {key_hash(origin, k): k for k in trusted}
    for line in signatures[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise CheckpointError(f"not a signature line: {line[:40]!r}")
        name, _, blob = line[len(_SIG_PREFIX):].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError as exc:
            raise CheckpointError("signature is not base64") from exc
        public = wanted.get(raw[:4])
        if name != origin or public is None or len(raw) != 4 + 64:
            continue  # someone else's signature (a witness, say): not ours to check
        try:
            public.verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature as exc:
            raise CheckpointError("the hub's signature does not verify") from exc
        return checkpoint
    raise CheckpointError("no signature by a trusted hub key")
