"""A witness's cosignature on a checkpoint: C2SP ``tlog-cosignature`` (cosignature/v1).

A council's node witnesses the hub's audit log (docs/audit.md): it checks that a new
checkpoint is consistent with the last one it cosigned, then signs, with its council
key, the message (https://c2sp.org/tlog-cosignature)::

    cosignature/v1
    time 1764928800
    <the checkpoint text: origin, size, root, extension lines>

and sends one signed-note signature line::

    — <witness name> <base64(key hash[4] || time as uint64 big-endian[8] || Ed25519[64])>

where the key hash is the first 4 bytes of SHA-256(name || 0x0A || 0x04 || raw public
key) (0x04: the cosignature/v1 signature type). The witness name is the council code.
Pure: no database, no I/O.

    >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    >>> from datetime import UTC, datetime
    >>> from server_common.audit.checkpoint import sign as sign_checkpoint
    >>> hub, node = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    >>> cp = sign_checkpoint(hub, "signpost-hub/audit", 3, bytes(32),
    ...                      datetime(2026, 12, 5, 9, 0, tzinfo=UTC))
    >>> line = cosign(node, "E10000011", cp, datetime(2026, 12, 5, 9, 1, tzinfo=UTC))
    >>> open_cosignature(line, "E10000011", node.public_key(), cp).isoformat()
    '2026-12-05T09:01:00+00:00'
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server_common.audit.checkpoint import Checkpoint, CheckpointError

_SIG_PREFIX = "\u2014 "  # an em dash and a space, as in a signed note
_COSIGNATURE_V1 = b"\x04"


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def witness_key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + _COSIGNATURE_V1
                          + _raw(public_key)).digest()[:4]


def checkpoint_body(checkpoint: Checkpoint) -> str:
    """The checkpoint text (everything the log signed, without its signatures)."""
    text, sep, _ = checkpoint.note.partition("\n\n")
    if not sep:
        raise CheckpointError("no blank line between the checkpoint and its signatures")
    return text + "\n"


def signed_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_body(checkpoint)}".encode()


def cosign(key: Ed25519PrivateKey, name: str, checkpoint: Checkpoint, when: datetime) -> str:
    """The witness's signature line (with its final newline) on ``checkpoint``."""
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ValueError(f"witness name must be non-empty, without spaces or '+': {name!r}")
    timestamp = int(when.timestamp())
    signature = key.sign(signed_message(checkpoint, timestamp))
    blob = (witness_key_hash(name, key.public_key()) + timestamp.to_bytes(8, "big")
            + signature)
    return f"{_SIG_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"


def open_cosignature(line: str, name: str, public_key: Ed25519PublicKey,
                     checkpoint: Checkpoint) -> datetime:
    """Check that ``line`` is ``name``'s cosignature on ``checkpoint`` by ``public_key``;
    return the time the witness put in it. Raises CheckpointError saying what is wrong."""
    if not line.startswith(_SIG_PREFIX) or not line.endswith("\n") or line.count("\n") != 1:
        raise CheckpointError("a cosignature is one signature line ending in a newline")
    signer, _, blob = line[len(_SIG_PREFIX):-1].partition(" ")
    if signer != name:
        raise CheckpointError(f"the cosignature names {signer!r}, not {name!r}")
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError as exc:
        raise CheckpointError("the cosignature is not base64") from exc
    if len(raw) != 4 + 8 + 64:
        raise CheckpointError("a cosignature/v1 signature is 76 bytes")
    if raw[:4] != witness_key_hash(name, public_key):
        raise CheckpointError("the cosignature is by another key")
    timestamp = int.from_bytes(raw[4:12], "big")
    try:
        public_key.verify(raw[12:], signed_message(checkpoint, timestamp))
    except InvalidSignature as exc:
        raise CheckpointError("the cosignature does not verify") from exc
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise CheckpointError("the cosignature's time is out of range") from exc
