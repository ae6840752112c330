"""Batches of record operations, their hash chain, and the hub's receipts.

A batch payload is a msgpack map, signed as a whole in an Envelope of type
``BATCH_TYPE``::

    {"council": "E10000011", "seq": 7, "prev": "<sha256 hex of batch 6's payload>",
     "issued_at": "2026-11-25T10:00:00Z", "ops": [op, ...]}

    op = {"op": "upsert", "local_id": str, "version": int, "record": bin}
       | {"op": "delete", "local_id": str, "version": int}

``record`` holds the msgpack bytes of a ChildRecord wire map. Keeping the record
as its own bytes gives every record a digest (SHA-256 of those bytes) that the
node and hub can compare without re-serialising, under one signature per batch.

``seq`` is gapless per council, starting at 1; ``prev`` of batch 1 is GENESIS.

    >>> b = Batch(council="E10000011", seq=1, prev=GENESIS,
    ...           issued_at="2026-11-25T10:00:00Z", ops=(DeleteOp("X1", 2),))
    >>> Batch.decode(b.encode()).ops[0]
    DeleteOp(local_id='X1', version=2)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from protocol import encoding
from protocol.errors import DecodeError, ErrorCode, ValidationError
from protocol.records import ChildRecord, is_local_id

GENESIS = "0" * 64
MAX_OPS_PER_BATCH = 10_000
MAX_VERSION = 2**63 - 1
_COUNCIL = re.compile(r"^[A-Z][0-9]{8}$")  # ONS local authority code, e.g. E10000011
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def check_council_code(code: str, field: str = "council") -> str:
    if not isinstance(code, str) or not _COUNCIL.fullmatch(code):
        raise ValidationError(field, f"not a council code like E10000011: {code!r}")
    return code


@dataclass(frozen=True, slots=True)
class UpsertOp:
    local_id: str
    version: int
    record: bytes  # exact msgpack bytes of the record wire map

    @classmethod
    def of(cls, record: ChildRecord, version: int) -> UpsertOp:
        return cls(record.local_id, version, encoding.pack(record.to_wire()))

    def to_wire(self) -> dict[str, Any]:
        return {"op": "upsert", "local_id": self.local_id, "version": self.version,
                "record": self.record}

    @property
    def digest(self) -> str:
        return encoding.sha256_hex(self.record)


@dataclass(frozen=True, slots=True)
class DeleteOp:
    local_id: str
    version: int

    def to_wire(self) -> dict[str, Any]:
        return {"op": "delete", "local_id": self.local_id, "version": self.version}


@dataclass(frozen=True, slots=True)
class MalformedOp:
    """An op whose shape is wrong: it gets a rejected result, the rest of the batch applies."""

    local_id: str | None
    reason: str


Op = UpsertOp | DeleteOp | MalformedOp


def _op_from_wire(obj: Any) -> Op:
    if not isinstance(obj, dict):
        return MalformedOp(None, "op must be a map")
    local_id = obj.get("local_id")
    if not is_local_id(local_id):
        # The same grammar as a record's local_id, so a delete cannot carry bytes
        # (NUL, newlines) that the hub's database or logs would choke on.
        return MalformedOp(None, "local_id must be 1 to 64 letters, digits or . _ : -")
    version = obj.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        return MalformedOp(local_id, "version must be a positive integer")
    kind = obj.get("op")
    if kind == "delete":
        return DeleteOp(local_id, version)
    if kind == "upsert":
        record = obj.get("record")
        if not isinstance(record, bytes):
            return MalformedOp(local_id, "upsert needs record (bin)")
        return UpsertOp(local_id, version, record)
    return MalformedOp(local_id, f"unknown op {kind!r}")


@dataclass(frozen=True, slots=True)
class Batch:
    council: str
    seq: int
    prev: str
    issued_at: str
    ops: tuple[Op, ...]

    def to_wire(self) -> dict[str, Any]:
        ops = []
        for op in self.ops:
            if isinstance(op, MalformedOp):
                raise TypeError("a malformed op cannot be encoded")
            ops.append(op.to_wire())
        return {"council": self.council, "seq": self.seq, "prev": self.prev,
                "issued_at": self.issued_at, "ops": ops}

    def encode(self) -> bytes:
        return encoding.pack(self.to_wire())

    @classmethod
    def decode(cls, payload: bytes) -> Batch:
        """Decode a batch payload. Header faults refuse the batch; op faults are per op."""
        obj = encoding.unpack(payload, what="batch payload")
        if not isinstance(obj, dict):
            raise DecodeError("batch payload must be a map", code=ErrorCode.MALFORMED_REQUEST)
        council = obj.get("council")
        seq = obj.get("seq")
        prev = obj.get("prev")
        issued_at = obj.get("issued_at")
        ops = obj.get("ops")
        if not isinstance(council, str) or not _COUNCIL.fullmatch(council):
            raise DecodeError("batch council must be a council code",
                              code=ErrorCode.MALFORMED_REQUEST)
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_VERSION:
            raise DecodeError("batch seq must be a positive integer",
                              code=ErrorCode.MALFORMED_REQUEST)
        if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
            raise DecodeError("batch prev must be 64 lower-case hex characters",
                              code=ErrorCode.MALFORMED_REQUEST)
        if not isinstance(issued_at, str) or len(issued_at) > 40:
            raise DecodeError("batch issued_at must be an ISO 8601 string",
                              code=ErrorCode.MALFORMED_REQUEST)
        if not isinstance(ops, list):
            raise DecodeError("batch ops must be a list", code=ErrorCode.MALFORMED_REQUEST)
        if len(ops) > MAX_OPS_PER_BATCH:
            raise DecodeError(f"batch has more than {MAX_OPS_PER_BATCH} ops",
                              code=ErrorCode.PAYLOAD_TOO_LARGE, status=413)
        return cls(council, seq, prev, issued_at, tuple(_op_from_wire(op) for op in ops))


def batch_hash(payload: bytes) -> str:
    """The chain hash of a batch: SHA-256 of its exact payload bytes, hex."""
    return encoding.sha256_hex(payload)


APPLIED, REJECTED, STALE = "applied", "rejected", "stale"


@dataclass(frozen=True, slots=True)
class OpResult:
    """The hub's verdict on one op. ``stale`` means a newer version was already held."""

    local_id: str | None
    status: str
    code: str | None = None
    message: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"local_id": self.local_id, "status": self.status}
        if self.code:
            out["code"] = self.code
        if self.message:
            out["message"] = self.message
        return out


@dataclass(frozen=True, slots=True)
class Receipt:
    """The hub's signed proof that a batch was applied (payload of a RECEIPT_TYPE envelope)."""

    council: str
    seq: int
    batch_hash: str
    applied_at: str
    results: tuple[OpResult, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"council": self.council, "seq": self.seq, "batch_hash": self.batch_hash,
                "applied_at": self.applied_at,
                "results": [r.to_wire() for r in self.results]}

    def encode(self) -> bytes:
        return encoding.pack(self.to_wire())

    @classmethod
    def decode(cls, payload: bytes) -> Receipt:
        obj = encoding.unpack(payload, what="receipt")
        try:
            return cls(
                council=obj["council"], seq=obj["seq"], batch_hash=obj["batch_hash"],
                applied_at=obj["applied_at"],
                results=tuple(
                    OpResult(r["local_id"], r["status"], r.get("code"), r.get("message"))
                    for r in obj["results"]
                ),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise DecodeError("receipt is missing fields",
                              code=ErrorCode.MALFORMED_REQUEST) from exc

    def counts(self) -> dict[str, int]:
        out = {APPLIED: 0, REJECTED: 0, STALE: 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out
