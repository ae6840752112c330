"""Checking the cosignatures a log holds, row by row, for ``audit verify``.

A witness's newest cosignature binds the log: the log must still hold what it
cosigned (``service.witness_problems``). That binding is only as good as the row. A
database superuser who removed the newest entries could add a row of their own saying
a witness cosigned the shorter log, or copy an old genuine row to the end, and the
log would verify. So each row is checked against what the superuser cannot make:

- the signature, by a key enrolled for that witness (a council's node signs with its
  council key), over the hub-signed checkpoint of that size, with the root and time
  the row states; the newest row of each witness must verify, and an older one
  whenever its checkpoint is still held (an incident a witness accepted leaves older
  rows whose checkpoints are gone);
- the order: a witness cosigns forward in time, so a row whose signed time is earlier
  than a row before it, or that repeats an earlier row, was copied there.

What this cannot catch: rows deleted outright (each witness's own copy does: the
node refuses a log shorter than it cosigned), or a key the superuser enrolled for a
council themselves (enrolment is an operator's audited command; such a key is listed
by ``national-hub councils keys``). Pure: no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol import keys
from protocol.errors import SignpostError
from server_common.audit.checkpoint import Checkpoint, CheckpointError
from server_common.audit.cosignature import open_cosignature
from server_common.audit.witness_store import Cosigned

# kid -> (the witness it belongs to, its raw Ed25519 public key)
WitnessKeys = Mapping[str, tuple[str, bytes]]


def cosignature_problems(rows: Sequence[Cosigned], checkpoints: Mapping[int, Checkpoint],
                         witness_keys: WitnessKeys) -> list[tuple[int, str]]:
    """(tree size, what is wrong) for each row that a witness did not make as it
    stands. ``rows``: each witness's rows in arrival order; ``checkpoints``: the
    checkpoints whose hub signature verified, by size."""
    found: list[tuple[int, str]] = []
    for witness, group in groupby(rows, key=lambda r: r.witness):
        held = list(group)
        seen: set[tuple[int, str]] = set()
        latest_time = None
        for n, row in enumerate(held):
            newest = n == len(held) - 1
            checkpoint = checkpoints.get(row.tree_size)
            if checkpoint is None:
                if newest:
                    found.append((row.tree_size, f"witness {witness}'s newest cosignature is "
                                  "of a checkpoint the hub does not hold: it cannot be "
                                  "checked (checkpoints removed, or the row forged)"))
            else:
                why = _unverified(row, witness, checkpoint, witness_keys)
                if why is not None:
                    found.append((row.tree_size, f"witness {witness}'s cosignature does not "
                                  f"verify ({why}): the council did not make it"))
            if (row.tree_size, row.cosignature) in seen:
                found.append((row.tree_size, f"witness {witness}'s cosignature repeats an "
                              "earlier one: an old cosignature copied forward"))
            elif latest_time is not None and row.cosigned_at < latest_time:
                found.append((row.tree_size, f"witness {witness}'s cosignature is older than "
                              "one it made before it: an old cosignature copied forward"))
            seen.add((row.tree_size, row.cosignature))
            latest_time = max(row.cosigned_at, latest_time or row.cosigned_at)
    return found


def _unverified(row: Cosigned, witness: str, checkpoint: Checkpoint,
                witness_keys: WitnessKeys) -> str | None:
    owner, raw = witness_keys.get(row.kid, (None, b""))
    if owner != witness:
        return f"key {row.kid!r} is not one enrolled for {witness}"
    try:
        public: Ed25519PublicKey = keys.public_from_raw(raw)
        signed_at = open_cosignature(row.cosignature, witness, public, checkpoint)
    except (CheckpointError, SignpostError, ValueError) as exc:
        return str(exc)
    if row.root_hash != checkpoint.root:
        return "its root is not the checkpoint's"
    if signed_at != row.cosigned_at:
        return "its time is not the one signed"
    return None
