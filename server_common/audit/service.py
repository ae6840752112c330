"""The audit log service: append inside the caller's transaction, sign checkpoints,
serve proofs, verify everything, and answer auditors' subject-access questions.

Fail closed: :meth:`AuditLog.append` runs in the caller's transaction, so when the
audit write fails the caller's transaction fails with it and nothing it did is
committed. Append last in that transaction: the counter row it locks is held until
commit, and every other audited request waits behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import keys
from protocol.errors import (
    ErrorCode,
    NotFoundError,
    SignpostError,
    UnavailableError,
    ValidationError,
)
from server_common.audit import merkle
from server_common.audit.checkpoint import Checkpoint, CheckpointError, open_note, read_note, sign
from server_common.audit.cosigned_rows import WitnessKeys, cosignature_problems
from server_common.audit.entry import Actor, AuditEntry
from server_common.audit.group_commit import GroupCommitter
from server_common.audit.sealing import ParameterSeal, is_sealed
from server_common.audit.store import AuditStore, StoredCheckpoint, StoredEntry
from server_common.audit.witness_store import Cosigned, WitnessStore
from server_common.tasks import run_every

log = logging.getLogger(__name__)

WitnessKeySource = Callable[[asyncpg.Connection], Awaitable[WitnessKeys]]
_SCAN_CHUNK = 10_000
# How a listing shows an entry whose bytes no longer read as one (AuditRecord.damaged).
DAMAGED_ACTION = "damaged_entry"
DAMAGED_PURPOSE = "this entry's stored bytes do not read as an audit entry: run audit verify"


class AuditWriteError(UnavailableError):
    """The audit entry could not be written, so the audited action did not happen."""


class AuditIntegrityError(SignpostError):
    """The stored log disagrees with a checkpoint the hub signed: it will not sign more."""

    status = 500
    code = ErrorCode.INTERNAL


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry as listed. ``damaged``: its stored bytes do not read as an audit entry
    (rewritten behind the log's back, which ``audit verify`` reports): ``entry`` then
    holds only what the row's own columns say (who, when, which children), so the
    listing still shows every other access instead of failing."""

    seq: int
    entry: AuditEntry
    damaged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, **self.entry.to_dict(),
                **({"damaged": True} if self.damaged else {})}

    @classmethod
    def of(cls, row: StoredEntry) -> AuditRecord:
        try:
            return cls(row.seq, AuditEntry.from_bytes(row.entry))
        except ValueError:
            return cls(row.seq, AuditEntry(
                row.who, role="", organisation="", purpose=DAMAGED_PURPOSE,
                action=DAMAGED_ACTION, child_ids=row.child_ids, at=row.at), damaged=True)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    seq: int
    tree_size: int
    entry: bytes
    leaf_hash: bytes
    root_hash: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first: int
    second: int
    first_root: bytes
    second_root: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    message: str
    seq: int | None = None
    tree_size: int | None = None

    def __str__(self) -> str:
        where = (f"seq {self.seq}: " if self.seq is not None
                 else f"checkpoint {self.tree_size}: " if self.tree_size is not None else "")
        return where + self.message


@dataclass(slots=True)
class VerifyReport:
    entries: int = 0
    checkpoints: int = 0
    witnesses: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def witness_problems(cosigned: Sequence[Cosigned], held: int,
                     roots: dict[int, bytes]) -> list[Problem]:
    """What the log (``held`` entries, ``roots`` by prefix size) breaks of each witness's
    latest cosignature: fewer entries than it cosigned is a truncation; a different
    root at the size it cosigned is a rewrite or a fork."""
    found = []
    for c in cosigned:
        if c.tree_size > held:
            found.append(Problem(
                f"witness {c.witness} cosigned {c.tree_size} entries but the log holds "
                f"{held}: entries were removed (truncation)", tree_size=c.tree_size))
        elif roots[c.tree_size] != c.root_hash:
            found.append(Problem(
                f"the root of the first {c.tree_size} entries differs from the one witness "
                f"{c.witness} cosigned: the log was rewritten or forked",
                tree_size=c.tree_size))
    return found


class AuditLog:
    def __init__(self, pool: asyncpg.Pool, signing_key: Ed25519PrivateKey | None, *,
                 origin: str = "signpost-hub/audit",
                 trusted_keys: Sequence[Ed25519PublicKey] = (),
                 store: AuditStore | None = None,
                 witnesses: WitnessStore | None = None,
                 seal_key_file: Path | None = None,
                 witness_keys: WitnessKeySource | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """``signing_key`` signs checkpoints (None: this instance only verifies);
        checkpoints verify against its public key and ``trusted_keys`` (earlier hub keys).
        ``seal_key_file``: the accounts key file, from which the key that seals a shielded
        answer's location parameters is derived (``sealing``); read when first needed."""
        self.pool = pool
        self.signing_key = signing_key
        self.origin = origin
        self.trusted = list(trusted_keys)
        if signing_key is not None:
            self.trusted.insert(0, signing_key.public_key())
        self.store = store or AuditStore()
        self.witnesses = witnesses or WitnessStore()
        # the keys witnesses cosign with (the hub's enrolled council keys): with them
        # verify_all checks every cosignature row, not only what it states
        self.witness_keys = witness_keys
        self.clock = clock
        self._group = GroupCommitter(pool, self.store)
        self._seal_key_file = seal_key_file

    @cached_property
    def seal(self) -> ParameterSeal:
        if self._seal_key_file is None:
            raise RuntimeError("this audit log was built without the accounts key file, "
                               "so it cannot seal or open parameters")
        return ParameterSeal.from_key_file(self._seal_key_file)

    def asked(self, parameters: Mapping[str, Any], *, shielded: bool) -> dict[str, Any]:
        """A search's parameters as its entry records them: where it looked sealed when
        its answer holds a shielded child (``sealing``)."""
        return self.seal.where_shielded(parameters, shielded)

    # --- writing ----------------------------------------------------------------

    async def append(self, conn: asyncpg.Connection, entry: AuditEntry) -> int:
        """Write ``entry`` in the caller's (open) transaction; return its seq."""
        if not conn.is_in_transaction():
            raise RuntimeError("AuditLog.append must run inside the caller's transaction")
        stamped = entry.stamped(self.clock())
        data = stamped.to_bytes()
        assert stamped.at is not None
        try:
            seq = await self.store.append(conn, data, merkle.leaf_hash(data), stamped.who,
                                          list(stamped.child_ids), stamped.at)
        except asyncpg.PostgresError as exc:
            log.error("audit write failed", extra={"action": entry.action,
                                                   "sqlstate": exc.sqlstate})
            raise AuditWriteError("the audit log could not be written, so nothing was done; "
                                  "try again") from exc
        return seq

    async def record(self, entry: AuditEntry) -> int:
        """Write ``entry`` on its own, committed when this returns; return its seq. For
        audited reads: record first, then read, so a failed write shows nothing.
        Concurrent calls share one transaction (see ``group_commit``), so an entry the
        database would refuse (a NUL in a text column) is refused here, before it joins
        the group: it would fail every other reader's write with it."""
        if "\x00" in entry.who or any("\x00" in c for c in entry.child_ids):
            raise ValidationError("child_id", "must not contain a NUL character")
        stamped = entry.stamped(self.clock())
        data = stamped.to_bytes()
        assert stamped.at is not None
        try:
            return await self._group.write((data, merkle.leaf_hash(data), stamped.who,
                                            list(stamped.child_ids), stamped.at))
        except asyncpg.PostgresError as exc:
            log.error("audit write failed", extra={"action": entry.action,
                                                   "sqlstate": exc.sqlstate})
            raise AuditWriteError("the audit log could not be written, so nothing was "
                                  "shown; try again") from exc

    async def check_writable(self, conn: asyncpg.Connection) -> None:
        """For ``/readyz``: an append in a transaction that is rolled back."""
        await self.store.probe_write(conn)

    async def checkpoint(self) -> Checkpoint:
        """Sign the current tree head (or return the checkpoint already signed for it).

        Refuses (AuditIntegrityError) when the stored entries no longer give the root
        of the latest checkpoint: the hub never signs over a rewritten history.
        """
        for attempt in range(3):
            try:
                return await self._checkpoint_once()
            except asyncpg.SerializationError:
                # Another replica stored a checkpoint of this size after our snapshot
                # began; the next attempt sees (and returns) it.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _checkpoint_once(self) -> Checkpoint:
        if self.signing_key is None:
            raise RuntimeError("this AuditLog has no signing key")
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            size = await self.store.size(conn)
            leaves = await self.store.leaf_hashes(conn, size)
            previous = await self.store.latest_checkpoint(conn)
            if len(leaves) != size or (previous is not None and previous.tree_size > size):
                raise AuditIntegrityError(f"the log holds {len(leaves)} of its {size} entries; "
                                          "run 'audit verify'")
            cosigned = await self.witnesses.latest_cosignatures(conn)
            sizes = [size] + ([previous.tree_size] if previous else [])
            roots = merkle.prefix_roots(
                leaves, sizes + [c.tree_size for c in cosigned if c.tree_size <= size])
            if previous is not None and roots[previous.tree_size] != previous.root_hash:
                raise AuditIntegrityError(
                    f"the entries no longer match checkpoint {previous.tree_size}; "
                    "run 'audit verify'")
            # A witness's copy is out of the reach of whoever can write this database:
            # never sign over a log that lost or changed what a witness cosigned.
            broken = witness_problems(cosigned, size, roots)
            if broken:
                raise AuditIntegrityError(f"{broken[0]}; run 'audit verify'")
            signed = sign(self.signing_key, self.origin, size, roots[size], self.clock())
            stored = await self.store.add_checkpoint(
                conn, size, roots[size], signed.time,
                keys.key_id(self.signing_key.public_key()), signed.note)
        return self._checkpoint(stored)

    async def checkpoint_if_grown(self) -> Checkpoint | None:
        """Sign a checkpoint when entries arrived since the latest one."""
        async with self.pool.acquire() as conn:
            latest = await self.store.latest_checkpoint(conn)
            size = await self.store.size(conn)
        if latest is not None and latest.tree_size >= size:
            return None
        return await self.checkpoint()

    async def checkpoint_periodically(self, interval: float) -> None:
        """The background task: a checkpoint every ``interval`` seconds if the log grew,
        under ``run_every``'s error policy (a closed pool or lost database is retried at
        the next interval, never ends the task)."""
        await run_every("audit checkpoint", self._checkpoint_and_log, interval,
                        first_after=interval)

    async def _checkpoint_and_log(self) -> None:
        try:
            signed = await self.checkpoint_if_grown()
        except CheckpointError:  # stored data, not this code: say so, try next time
            log.error("a stored audit checkpoint is malformed", exc_info=True)
            return
        if signed is not None:
            log.info("audit checkpoint signed", extra={"tree_size": signed.size})

    # --- reading ----------------------------------------------------------------

    async def latest_checkpoint(self) -> Checkpoint | None:
        async with self.pool.acquire() as conn:
            stored = await self.store.latest_checkpoint(conn)
        return self._checkpoint(stored) if stored else None

    @staticmethod
    def _checkpoint(stored: StoredCheckpoint) -> Checkpoint:
        # Served as stored: whoever relies on it checks the signature (verify_all does).
        return read_note(stored.note)

    async def store_latest_size(self) -> int:
        """Entries covered by the latest stored checkpoint (0 when there is none)."""
        async with self.pool.acquire() as conn:
            latest = await self.store.latest_checkpoint(conn)
        return latest.tree_size if latest else 0

    async def size(self) -> int:
        async with self.pool.acquire() as conn:
            return await self.store.size(conn)

    async def _leaves(self, conn: asyncpg.Connection, tree_size: int) -> list[bytes]:
        size = await self.store.size(conn)
        if not 0 <= tree_size <= size:
            raise ValidationError("tree_size", f"must be between 0 and {size} (the log's size)")
        return await self.store.leaf_hashes(conn, tree_size)

    async def inclusion_proof(self, seq: int, tree_size: int) -> InclusionProof:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            leaves = await self._leaves(conn, tree_size)
            if not 0 <= seq < tree_size:
                raise ValidationError("seq", f"must be at least 0 and below tree_size "
                                             f"({tree_size})")
            stored = await self.store.get(conn, seq)
        if stored is None:
            raise NotFoundError(f"audit entry {seq} is missing")
        return InclusionProof(seq, tree_size, stored.entry, leaves[seq],
                              merkle.root_hash(leaves),
                              tuple(merkle.inclusion_proof(leaves, seq)))

    async def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            leaves = await self._leaves(conn, second)
        if not 0 <= first <= second:
            raise ValidationError("first", f"must be between 0 and second ({second})")
        roots = merkle.prefix_roots(leaves, [first, second])
        return ConsistencyProof(first, second, roots[first], roots[second],
                                tuple(merkle.consistency_proof(leaves, first)))

    async def checkpoint_at(self, tree_size: int) -> Checkpoint | None:
        """The stored checkpoint of exactly ``tree_size`` entries, if one was signed."""
        async with self.pool.acquire() as conn:
            stored = await self.store.checkpoint_at(conn, tree_size)
        return self._checkpoint(stored) if stored else None

    async def entries_for_child(self, child_id: str) -> list[AuditRecord]:
        """Every access to one child, oldest first (subject access)."""
        async with self.pool.acquire() as conn:
            rows = await self.store.for_child(conn, child_id)
        return [AuditRecord.of(r) for r in rows]

    async def entries_by_user(self, who: str) -> list[AuditRecord]:
        """Everything one user did, oldest first."""
        async with self.pool.acquire() as conn:
            rows = await self.store.by_user(conn, who)
        return [AuditRecord.of(r) for r in rows]

    async def entries_between(self, since: datetime | None, until: datetime | None,
                              limit: int) -> list[AuditRecord]:
        """The newest entries stamped in [since, until), newest first (recent activity,
        or a date range), at most ``limit``."""
        async with self.pool.acquire() as conn:
            rows = await self.store.recent(conn, since, until, limit)
        return [AuditRecord.of(r) for r in rows]

    async def unseal(self, seq: int, actor: Actor, reason: str) -> AuditRecord:
        """Entry ``seq`` with its sealed parameters opened, for an investigation. The
        opening is audited first (who, why, which entry, the children it was about): if
        that write fails nothing is opened."""
        if not reason.strip():
            raise ValidationError("reason", "say why the entry is opened")
        async with self.pool.acquire() as conn:
            stored = await self.store.get(conn, seq)
        if stored is None:
            raise NotFoundError(f"no audit entry {seq}")
        try:
            entry = AuditEntry.from_bytes(stored.entry)
        except ValueError as exc:
            raise ValidationError("seq", f"entry {seq} is damaged ({exc}): "
                                         "run audit verify") from exc
        sealed = sorted(k for k, v in entry.parameters.items() if is_sealed(v))
        if not sealed:
            raise ValidationError("seq", f"entry {seq} holds no sealed parameter")
        opened = replace(entry, parameters=self.seal.opened(entry.parameters))
        await self.record(AuditEntry.by(actor, "unseal_parameters", reason.strip(),
                                        {"seq": seq, "parameters": sealed},
                                        entry.child_ids))
        return AuditRecord(seq, opened)

    # --- verifying --------------------------------------------------------------

    async def verify_all(self) -> VerifyReport:
        """Recompute every leaf hash from its entry bytes, check the indexed columns
        against the entry, the seqs have no gap, and every stored checkpoint: its
        signature by a trusted hub key, its fields, and its root over the entries."""
        report = VerifyReport()
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            size = await self.store.size(conn)
            leaves = await self._verify_entries(conn, size, report)
            stored = await self.store.checkpoints(conn)
            cosigned = await self.witnesses.latest_cosignatures(conn)
            every_cosignature = await self.witnesses.cosignatures(conn)
            witness_keys = (await self.witness_keys(conn)
                            if self.witness_keys is not None else None)
        report.checkpoints = len(stored)
        report.witnesses = len(cosigned)
        opened = {c.tree_size: self._verify_checkpoint(c, size, report) for c in stored}
        checked = [c for c in stored if opened[c.tree_size] is not None]
        held = len(leaves)
        roots = merkle.prefix_roots(
            leaves, [c.tree_size for c in cosigned if c.tree_size <= held])
        report.problems.extend(witness_problems(cosigned, held, roots))
        if witness_keys is not None:
            report.problems.extend(Problem(why, tree_size=tree_size) for tree_size, why in
                                   cosignature_problems(
                                       every_cosignature,
                                       {n: c for n, c in opened.items() if c is not None},
                                       witness_keys))
        if len(leaves) == size:
            roots = merkle.prefix_roots(leaves, [c.tree_size for c in checked])
            previous = 0
            for c in checked:
                if roots[c.tree_size] != c.root_hash:
                    report.problems.append(Problem(
                        f"the root of the entries differs from the signed one: an entry "
                        f"with seq from {previous} to {c.tree_size - 1} was changed",
                        tree_size=c.tree_size))
                previous = c.tree_size
        return report

    async def _verify_entries(self, conn: asyncpg.Connection, size: int,
                              report: VerifyReport) -> list[bytes]:
        leaves: list[bytes] = []
        after = -1
        while rows := await self.store.scan(conn, after, _SCAN_CHUNK):
            for row in rows:
                if row.seq != len(leaves):
                    report.problems.append(Problem(
                        f"missing (the next entry found is seq {row.seq})", seq=len(leaves)))
                    return leaves
                leaf = merkle.leaf_hash(row.entry)
                leaves.append(leaf)
                if leaf != row.leaf_hash:
                    report.problems.append(Problem(
                        "the entry does not hash to its stored leaf hash (entry or hash "
                        "changed)", seq=row.seq))
                try:
                    parsed = AuditEntry.from_bytes(row.entry)
                except (ValueError, UnicodeDecodeError):
                    report.problems.append(Problem("the entry is not a valid audit entry",
                                                   seq=row.seq))
                    continue
                if (parsed.who, parsed.child_ids, parsed.at) != (row.who, row.child_ids,
                                                                 row.at):
                    report.problems.append(Problem(
                        "the who, child_ids or at column differs from the entry", seq=row.seq))
            after = rows[-1].seq
        report.entries = len(leaves)
        if len(leaves) != size:
            report.problems.append(Problem(
                f"the log holds {len(leaves)} entries but its counter says {size}"))
        return leaves

    def _verify_checkpoint(self, c: StoredCheckpoint, size: int,
                           report: VerifyReport) -> Checkpoint | None:
        """The stored checkpoint opened, if it verifies; else None, its problem noted."""
        try:
            opened = open_note(c.note, self.trusted)
        except CheckpointError as exc:
            report.problems.append(Problem(str(exc), tree_size=c.tree_size))
            return None
        if (opened.origin, opened.size, opened.root) != (self.origin, c.tree_size, c.root_hash):
            report.problems.append(Problem("the signed note does not match the stored origin, "
                                           "size or root", tree_size=c.tree_size))
            return None
        if c.tree_size > size:
            report.problems.append(Problem(f"signs more entries than the log holds ({size}): "
                                           "entries were removed", tree_size=c.tree_size))
            return None
        return opened
