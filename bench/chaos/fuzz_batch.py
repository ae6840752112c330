"""A seeded fuzz of the hub's batch endpoint over real HTTP, against its database.

Each case builds a batch of a few ops, mutates it (bit flips in the body, the payload
or a record; wrong types; deep nesting; huge strings and arrays; invalid UTF-8; bad
dates; duplicate and unknown keys), signs what it built (so the mutation reaches the
hub's decoders, not just the signature check) and sends it. Whatever comes back
(see ``fuzz.FAILURES``):

- never a 5xx;
- a refusal carries a known, stable error code, and changed nothing (records, cursor);
- an accepted batch advanced the cursor by one, its receipt verifies with the hub's
  key, every result has a known status (and a known code unless applied), and the
  only records that changed are those reported applied, each now exactly as its last
  applied op said: nothing is half-applied.

The batch's ``seq`` and ``prev`` are read from the hub before each case, so one
surprise does not derail the cases after it. A case whose flipped bits made another
valid seq or prev gets ``prev_mismatch``/``seq_gap``/``fork``; a fork flags the
council, and the fuzz clears the flag as an operator would (``councils unflag``).

Example::

    fuzz = BatchFuzz(hub_url, pool, "E10000011", council_key, hub_public_key, seed=7)
    report = await fuzz.run(1000)
"""

from __future__ import annotations

import io
import json
import random
from datetime import date
from typing import Any

import aiohttp
import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bench.chaos.fuzz import BAD_DATES, WRONG, FuzzReport, flip, splice
from national_hub.storage.councils import CouncilStore
from protocol import encoding, request_auth
from protocol.batch import Batch, DeleteOp, Receipt, UpsertOp, batch_hash
from protocol.errors import SignpostError
from protocol.signing import BATCH_TYPE, Envelope
from tests.national_hub.helpers import record

IDS = [f"F{i}" for i in range(8)]
State = tuple[int, str, dict[str, tuple[int, str | None]]]  # cursor seq, hash, records


async def send_batch(http: aiohttp.ClientSession, hub_url: str, council: str,
                     key: Ed25519PrivateKey, body: bytes) -> tuple[int, bytes]:
    """POST a batch envelope as ``council`` (the request signed with ``key``)."""
    path = f"/v1/councils/{council}/batches"
    headers = request_auth.sign_request(key, "POST", path, body, council)
    async with http.post(hub_url + path, data=io.BytesIO(body), headers=headers) as resp:
        return resp.status, await resp.read()


class BatchMutator:
    """Seeded batches, most of them wrong in some way."""

    def __init__(self, rng: random.Random, council: str) -> None:
        self.rng, self.council = rng, council
        self.version = 1

    def next_version(self) -> int:
        self.version += self.rng.choice([1, 1, 1, 0, -1])  # sometimes stale on purpose
        return max(1, self.version)

    def record_wire(self, local_id: str) -> dict[str, Any]:
        rng = self.rng
        wire = record(local_id, nhs=rng.choice([None, "9434765919"])).to_wire()
        wire["given_name"] = rng.choice(["Amelia", "Zoë", "Ng", "O'Brien-Smith"])
        wire["dob"] = date(rng.randint(2008, 2024), rng.randint(1, 12), rng.randint(1, 28)
                           ).isoformat()
        return wire

    def mutate_record(self, wire: dict[str, Any]) -> bytes:
        rng = self.rng
        kind = rng.choice(["none", "none", "bad_date", "wrong_type", "huge_string",
                           "huge_array", "unknown_key", "deep", "bad_utf8", "flip",
                           "duplicate_key", "trailing", "nested_bad"])
        if kind == "bad_date":
            wire[rng.choice(["dob", "date_of_death"])] = rng.choice(BAD_DATES)
        elif kind == "wrong_type":
            wire[rng.choice(sorted(wire))] = rng.choice(WRONG)
        elif kind == "huge_string":
            wire[rng.choice(["given_name", "address_line", "postcode"])] = "A" * rng.choice(
                [101, 10_000, 1_000_000])
        elif kind == "huge_array":
            wire["former_family_names"] = ["Smith"] * rng.choice([11, 100_000])
        elif kind == "unknown_key":
            wire[rng.choice(["case_notes", "Given_Name", "", "x" * 500])] = "secret"
        elif kind == "nested_bad":
            wire["involvements"] = [{"service_type": "mental_health", "consent": False},
                                    {"service_type": "School"}, "not a map",
                                    {"service_type": "school", "start_date": "2015-02-30"}]
        elif kind == "deep":
            return splice(wire | {"given_name": "@@DEEP@@"}, "@@DEEP@@",
                          b"\x91" * rng.choice([100, 5_000, 100_000]) + b"\xc0")
        elif kind == "bad_utf8":
            return splice(wire | {"family_name": "@@UTF8@@"}, "@@UTF8@@",
                          rng.choice([b"\xa2\xc3\x28", b"\xa3\xed\xa0\x80", b"\xa1\xff"]))
        elif kind == "duplicate_key":
            data = encoding.pack(wire)
            # a second "dob" key: rewrite the map header to claim one more pair
            return bytes([data[0] + 1]) + data[1:] + encoding.pack("dob") + encoding.pack(
                "2010-01-01") if data[0] < 0x8F else data
        elif kind == "trailing":
            return encoding.pack(wire) + b"\xc0"
        data = encoding.pack(wire)
        return flip(data, rng, rng.randint(1, 4)) if kind == "flip" else data

    def ops(self) -> list[Any]:
        rng = self.rng
        ops: list[Any] = []
        for _ in range(rng.randint(1, 5)):
            local_id = rng.choice(IDS)
            version = self.next_version()
            if rng.random() < 0.2:
                ops.append(DeleteOp(local_id, version).to_wire())
                continue
            op = UpsertOp(local_id, version,
                          self.mutate_record(self.record_wire(local_id))).to_wire()
            if rng.random() < 0.1:  # a broken op: wrong types in the op itself
                op[rng.choice(["op", "local_id", "version", "record"])] = rng.choice(WRONG)
            ops.append(op)
        return ops

    def payload(self, seq: int, prev: str) -> bytes:
        rng = self.rng
        header: dict[str, Any] = {"council": self.council, "seq": seq, "prev": prev,
                                  "issued_at": "2026-11-26T02:00:00Z", "ops": self.ops()}
        kind = rng.choice(["none"] * 6 + ["wrong_type", "flip", "deep", "bad_utf8",
                                          "too_many_ops", "huge_issued_at", "extra_key",
                                          "not_a_map", "other_council"])
        if kind == "wrong_type":
            header[rng.choice(["council", "seq", "prev", "issued_at", "ops"])] = rng.choice(
                [w for w in WRONG if not isinstance(w, int) or isinstance(w, bool)])
        elif kind == "too_many_ops":
            header["ops"] = [DeleteOp("F0", 1).to_wire()] * 10_001
        elif kind == "huge_issued_at":
            header["issued_at"] = "2" * 100_000
        elif kind == "extra_key":
            header["future_field"] = {"ignored": [1, 2, 3]}
        elif kind == "not_a_map":
            return encoding.pack([header])
        elif kind == "other_council":
            header["council"] = "E10000032" if self.council != "E10000032" else "E10000011"
        elif kind == "deep":
            return splice(header | {"ops": ["@@DEEP@@"]}, "@@DEEP@@",
                          b"\x91" * rng.choice([100, 100_000]) + b"\xc0")
        elif kind == "bad_utf8":
            return splice(header | {"issued_at": "@@UTF8@@"}, "@@UTF8@@", b"\xa2\xc3\x28")
        data = encoding.pack(header)
        return flip(data, rng, rng.randint(1, 3)) if kind == "flip" else data


class BatchFuzz:
    """Sends mutated, signed batches as ``council`` and checks the hub after each."""

    def __init__(self, hub_url: str, pool: asyncpg.Pool, council: str,
                 key: Ed25519PrivateKey, hub_public: Ed25519PublicKey, seed: int) -> None:
        self.url, self.pool, self.council, self.key = hub_url, pool, council, key
        self.hub_public, self.seed = hub_public, seed
        self.rng = random.Random(f"{seed}:batch")
        self.mutator = BatchMutator(self.rng, council)
        self.report = FuzzReport(seed)

    async def run(self, cases: int) -> FuzzReport:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            for n in range(cases):
                await self.case(http, f"batch seed {self.seed} case {n}")
        return self.report

    async def _state(self) -> State:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT cursor_seq, cursor_hash FROM councils"
                                      " WHERE code = $1", self.council)
            rows = await conn.fetch("SELECT local_id, version, digest FROM records"
                                    " WHERE council_code = $1", self.council)
        return (row["cursor_seq"], row["cursor_hash"],
                {r["local_id"]: (r["version"], r["digest"]) for r in rows})

    async def case(self, http: aiohttp.ClientSession, where: str) -> None:
        report = self.report
        cursor, prev, before = await self._state()
        payload = self.mutator.payload(cursor + 1, prev)
        body = Envelope.sign(BATCH_TYPE, payload, [self.key]).encode()
        if self.rng.random() < 0.08:
            body = flip(body, self.rng, self.rng.randint(1, 8))
        status, data = await send_batch(http, self.url, self.council, self.key, body)
        report.case("batch", status)
        after_cursor, _, after = await self._state()
        if status >= 500:
            report.fail("5xx", f"{where}: {status} {data[:300]!r}")
            return
        if status != 200:
            report.outcomes["batch refused"] += 1
            await self._refused(where, data, payload, (cursor, prev, before),
                                (after_cursor, after))
            return
        report.outcomes["batch accepted"] += 1
        try:
            receipt_env = Envelope.decode(data)
            receipt = Receipt.decode(receipt_env.payload)
        except SignpostError as exc:
            report.fail("bad_answer", f"{where}: receipt does not decode: {exc}")
            return
        if not receipt_env.verified_by(self.hub_public):
            report.fail("bad_answer", f"{where}: receipt not signed by the hub")
        if after_cursor != cursor + 1 or receipt.batch_hash != batch_hash(payload):
            report.fail("partial_apply", f"{where}: accepted, cursor {cursor} → "
                        f"{after_cursor}, receipt for {receipt.batch_hash[:12]}")
        try:
            ops = Batch.decode(payload).ops
        except SignpostError as exc:
            report.fail("bad_answer", f"{where}: the hub accepted a batch the protocol "
                        f"refuses ({exc})")
            return
        if len(receipt.results) != len(ops):
            report.fail("bad_answer", f"{where}: {len(ops)} ops, "
                        f"{len(receipt.results)} results")
            return
        final: dict[str, UpsertOp | DeleteOp] = {}
        for op, result in zip(ops, receipt.results, strict=True):
            if result.status not in ("applied", "rejected", "stale"):
                report.fail("bad_answer", f"{where}: result status {result.status!r}")
            elif result.status != "applied":
                report.code(result.code, where, prefix="op:")
            elif isinstance(op, UpsertOp | DeleteOp):
                final[op.local_id] = op
        for local_id in set(before) | set(after):
            if local_id not in final and after.get(local_id) != before.get(local_id):
                report.fail("partial_apply", f"{where}: {local_id} changed, not applied")
        for local_id, op in final.items():
            digest = op.digest if isinstance(op, UpsertOp) else None
            if after.get(local_id) != (op.version, digest):
                report.fail("partial_apply", f"{where}: {local_id} reported applied, hub "
                            f"holds {after.get(local_id)}")

    async def _refused(self, where: str, data: bytes, payload: bytes, before: State,
                       after: tuple[int, dict[str, tuple[int, str | None]]]) -> None:
        report = self.report
        cursor, prev, records = before
        try:
            code = json.loads(data)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        report.code(code, where)
        if after != (cursor, records):
            report.fail("partial_apply", f"{where}: refused ({code}) but changed")
        if code in ("prev_mismatch", "seq_gap", "fork"):
            # a flipped bit made another valid seq or prev: the refusal must be right
            try:
                sent = Batch.decode(payload)
            except SignpostError:
                sent = None
            if sent is None or (sent.seq, sent.prev) == (cursor + 1, prev):
                report.fail("bad_answer", f"{where}: {code} for the right seq and prev")
            async with self.pool.acquire() as conn:  # the operator's unflag
                await CouncilStore().clear_fork(conn, self.council)
        if code == "council_flagged":
            report.fail("bad_answer", f"{where}: council still flagged after an unflag")
