"""Anti-entropy: finding, cheaply, where the hub's copy of a council differs from the node's.

A batch that was applied can still be lost later (a restored hub backup, a bad
manual fix, a damaged disk). So a node from time to time compares what the hub
holds for it with its own projection and republishes exactly what differs
(docs/PROTOCOL.md §12.1).

Records are put in **buckets** by the first ``bits`` bits of SHA-256 of their
``local_id``; each bucket has a **digest** over its live records, sorted by
``local_id``: the SHA-256 of the concatenation of
``local_id "\\n" version "\\n" record_digest "\\n"`` (version in decimal). The node
asks for the hub's bucket digests, compares them with its own, and asks for the
records of the differing buckets only, so one difference among 246,000 records
costs one bucket of ~32 records, not the whole council.

    >>> bucket_of("L000000001", 8)
    136
    >>> summary = summarise({"L000000001": (1, "ab" * 32)}, 8)
    >>> summary[136].count, summary[136].digest[:16]
    (1, '218d4576a5bf87ea')

The hub's side of this (the same digests, computed in SQL) is
``national_hub/storage/anti_entropy.py``; a test checks the two agree.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol import encoding
from protocol.batch import MAX_VERSION
from protocol.errors import DecodeError, ErrorCode, TooLargeError, ValidationError
from protocol.records import is_local_id

MAX_BITS = 16
# A drill-down names at most this many buckets (the answer stays a few MB at most).
MAX_BUCKETS_PER_REQUEST = 1024
# The node aims for about this many records per bucket.
TARGET_PER_BUCKET = 32
# The hub refuses a ``bits`` that would put more than this many of its records in a
# bucket on average: each bucket digest is one aggregate over its records, and a
# drill-down answers whole buckets, so too few bits (``bits = 0``: one bucket of every
# record) would make the hub hash, hold and send the whole council for one request.
MAX_PER_BUCKET = 1024
# A drill-down answers at most this many rows (a few MB); more is 413.
MAX_HELD_PER_ANSWER = 65_536

LIVE, DAMAGED, DELETED = "live", "damaged", "deleted"
STATES = (LIVE, DAMAGED, DELETED)


def bucket_of(local_id: str, bits: int) -> int:
    """The first ``bits`` bits (0–16) of SHA-256(UTF-8 local_id), as an integer."""
    head = hashlib.sha256(local_id.encode("utf-8")).digest()[:2]
    return int.from_bytes(head, "big") >> (MAX_BITS - bits)


def choose_bits(record_count: int) -> int:
    """Enough buckets for about TARGET_PER_BUCKET records each."""
    if record_count <= TARGET_PER_BUCKET:
        return 0
    return min(MAX_BITS, math.ceil(math.log2(record_count / TARGET_PER_BUCKET)))


def min_bits(record_count: int) -> int:
    """The fewest bits the hub accepts for a council of this many live records: buckets
    of at most MAX_PER_BUCKET records on average (0 up to that many)."""
    if record_count <= MAX_PER_BUCKET:
        return 0
    return min(MAX_BITS, math.ceil(math.log2(record_count / MAX_PER_BUCKET)))


def bucket_digest(entries: Iterable[tuple[str, int, str]]) -> str:
    """Digest of one bucket's (local_id, version, record digest) triples, in any order."""
    h = hashlib.sha256()
    for local_id, version, digest in sorted(entries):
        h.update(f"{local_id}\n{version}\n{digest}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class BucketDigest:
    bucket: int
    count: int
    digest: str


def summarise(records: Mapping[str, tuple[int, str]], bits: int) -> dict[int, BucketDigest]:
    """Bucket digests of live records (local_id → (version, record digest)); empty
    buckets are absent."""
    buckets: dict[int, list[tuple[str, int, str]]] = {}
    for local_id, (version, digest) in records.items():
        buckets.setdefault(bucket_of(local_id, bits), []).append((local_id, version, digest))
    return {b: BucketDigest(b, len(entries), bucket_digest(entries))
            for b, entries in buckets.items()}


def differing_buckets(ours: Mapping[int, BucketDigest],
                      theirs: Mapping[int, BucketDigest]) -> list[int]:
    return sorted(b for b in set(ours) | set(theirs) if ours.get(b) != theirs.get(b))


# --- wire messages ---------------------------------------------------------------------


def _map(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DecodeError(f"{what} must be a map", code=ErrorCode.MALFORMED_REQUEST)
    return obj


def _int(obj: dict[str, Any], key: str, low: int, high: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(key, f"must be an integer from {low} to {high}")
    return value


def _check_bits(obj: dict[str, Any]) -> int:
    return _int(obj, "bits", 0, MAX_BITS)


@dataclass(frozen=True, slots=True)
class DigestRequest:
    """Body of ``POST /v1/councils/{code}/digests``: ``{"bits": 10}``."""

    bits: int

    def encode(self) -> bytes:
        return encoding.pack({"bits": self.bits})

    @classmethod
    def decode(cls, data: bytes) -> DigestRequest:
        return cls(_check_bits(_map(encoding.unpack(data, what="digest request"),
                                    "digest request")))


@dataclass(frozen=True, slots=True)
class DigestSummary:
    """The hub's answer: every non-empty bucket of the council's live records.

    ``{"council": "E10000011", "bits": 10, "records": 2,
       "buckets": [[17, 1, "<hex>"], [640, 1, "<hex>"]]}``
    """

    council: str
    bits: int
    records: int
    buckets: tuple[BucketDigest, ...]

    def encode(self) -> bytes:
        return encoding.pack({"council": self.council, "bits": self.bits,
                              "records": self.records,
                              "buckets": [[b.bucket, b.count, b.digest] for b in self.buckets]})

    def by_bucket(self) -> dict[int, BucketDigest]:
        return {b.bucket: b for b in self.buckets}

    @classmethod
    def decode(cls, data: bytes) -> DigestSummary:
        obj = _map(encoding.unpack(data, what="digest summary"), "digest summary")
        bits = _check_bits(obj)
        raw = obj.get("buckets")
        council = obj.get("council")
        if not isinstance(raw, list) or not isinstance(council, str):
            raise DecodeError("digest summary needs council and buckets",
                              code=ErrorCode.MALFORMED_REQUEST)
        buckets = []
        for item in raw:
            if (not isinstance(item, list) or len(item) != 3
                    or not all(isinstance(x, int) and not isinstance(x, bool) for x in item[:2])
                    or not isinstance(item[2], str) or not 0 <= item[0] < 2**bits):
                raise DecodeError("a bucket must be [bucket, count, digest]",
                                  code=ErrorCode.MALFORMED_REQUEST)
            buckets.append(BucketDigest(item[0], item[1], item[2]))
        return cls(council, bits, _int(obj, "records", 0, MAX_VERSION), tuple(buckets))


@dataclass(frozen=True, slots=True)
class BucketRecordsRequest:
    """Body of ``POST /v1/councils/{code}/digests/records``: ``{"bits": 10, "buckets": [17]}``."""

    bits: int
    buckets: tuple[int, ...]

    def encode(self) -> bytes:
        return encoding.pack({"bits": self.bits, "buckets": list(self.buckets)})

    @classmethod
    def decode(cls, data: bytes) -> BucketRecordsRequest:
        obj = _map(encoding.unpack(data, what="bucket records request"),
                   "bucket records request")
        bits = _check_bits(obj)
        buckets = obj.get("buckets")
        if not isinstance(buckets, list) or not buckets:
            raise ValidationError("buckets", "must be a non-empty list of bucket numbers")
        if len(buckets) > MAX_BUCKETS_PER_REQUEST:
            raise TooLargeError(f"at most {MAX_BUCKETS_PER_REQUEST} buckets per request")
        for b in buckets:
            if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < 2**bits:
                raise ValidationError("buckets", f"each must be an integer from 0 to "
                                                 f"{2**bits - 1} for bits = {bits}")
        return cls(bits, tuple(sorted(set(buckets))))


@dataclass(frozen=True, slots=True)
class HeldEntry:
    """What the hub holds for one local_id: ``live`` (intact, with its record digest),
    ``damaged`` (a live row whose bytes, digest or columns no longer agree) or
    ``deleted`` (a tombstone); ``version`` is the version it holds.

    ``{"local_id": "L000000001", "version": 3, "state": "live", "digest": "<hex>"}``
    """

    local_id: str
    version: int
    state: str
    digest: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"local_id": self.local_id, "version": self.version,
                               "state": self.state}
        if self.digest is not None:
            out["digest"] = self.digest
        return out

    @classmethod
    def from_wire(cls, obj: Any) -> HeldEntry:
        obj = _map(obj, "held record")
        local_id, state, digest = obj.get("local_id"), obj.get("state"), obj.get("digest")
        if not is_local_id(local_id) or state not in STATES:
            raise DecodeError("held record needs local_id and a known state",
                              code=ErrorCode.MALFORMED_REQUEST)
        if (state == LIVE) != isinstance(digest, str):
            raise DecodeError("a live held record, and only a live one, has a digest",
                              code=ErrorCode.MALFORMED_REQUEST)
        return cls(local_id, _int(obj, "version", 1, MAX_VERSION), state, digest)


@dataclass(frozen=True, slots=True)
class BucketRecords:
    """The hub's answer to a drill-down: every row it holds in those buckets,
    tombstones included (their versions matter to the node's next op)."""

    council: str
    bits: int
    records: tuple[HeldEntry, ...]

    def encode(self) -> bytes:
        return encoding.pack({"council": self.council, "bits": self.bits,
                              "records": [r.to_wire() for r in self.records]})

    @classmethod
    def decode(cls, data: bytes) -> BucketRecords:
        obj = _map(encoding.unpack(data, what="bucket records"), "bucket records")
        council, records = obj.get("council"), obj.get("records")
        if not isinstance(council, str) or not isinstance(records, list):
            raise DecodeError("bucket records need council and records",
                              code=ErrorCode.MALFORMED_REQUEST)
        return cls(council, _check_bits(obj), tuple(HeldEntry.from_wire(r) for r in records))
