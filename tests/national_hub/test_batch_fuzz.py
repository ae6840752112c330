"""A seeded fuzz of the hub's batch endpoint over real HTTP, against PostgreSQL.

Each round builds a batch of a few ops, mutates it (bit flips in the body, the payload
or a record; wrong types; deep nesting; huge strings and arrays; invalid UTF-8; bad
dates; duplicate and unknown keys), signs what it built (so the mutation reaches the
hub's decoders, not just the signature check) and sends it. Whatever comes back:

- never a 5xx;
- a refusal carries a known, stable error code, and changed nothing (records, cursor);
- an accepted batch advanced the cursor by one, every result has a known status (and
  a known code unless applied), and the only records that changed are those reported
  applied, each now exactly as its last applied op said: nothing is half-applied.

Reproduce a failure with ``FUZZ_SEED=<seed> FUZZ_ROUNDS=<n>`` (printed on failure).
"""

from __future__ import annotations

import json
import os
import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from national_hub.storage.councils import CouncilStore
from protocol import encoding, keys
from protocol.batch import GENESIS, Batch, DeleteOp, Receipt, UpsertOp, batch_hash
from protocol.errors import ErrorCode, SignpostError
from protocol.signing import BATCH_TYPE, Envelope
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, record

ESX = "E10000011"
CODES = {str(c) for c in ErrorCode}
SEED = int(os.environ.get("FUZZ_SEED", "20261126"))
ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "160"))
IDS = [f"F{i}" for i in range(8)]
BAD_DATES: list[Any] = ["2015-02-30", "2015-13-01", "15-01-01", "2015-W11-6", "2999-01-01",
                        "1989-12-31", "2015-1-1", "", " ", 20150101, None, ["2015-01-01"],
                        "２０１５-01-01", "2015-01-01T00:00:00Z"]
WRONG: list[Any] = [None, True, 0, -1, 2**64 - 1, 1.5, "", "x" * 300, b"\x00\xff", [],
                    [1, [2]], {}, {"a": 1}]


def _flip(data: bytes, rng: random.Random, bits: int) -> bytes:
    out = bytearray(data)
    for _ in range(bits):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def _splice(obj: Any, marker: str, raw: bytes) -> bytes:
    """Pack ``obj``, then put ``raw`` (any bytes, even invalid msgpack) where the
    string ``marker`` was: how deep nesting and bad UTF-8 get into a message."""
    packed = encoding.pack(obj)
    token = encoding.pack(marker)
    assert packed.count(token) == 1
    return packed.replace(token, raw)


class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
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
            return _splice(wire | {"given_name": "@@DEEP@@"}, "@@DEEP@@",
                           b"\x91" * rng.choice([100, 5_000, 100_000]) + b"\xc0")
        elif kind == "bad_utf8":
            return _splice(wire | {"family_name": "@@UTF8@@"}, "@@UTF8@@",
                           rng.choice([b"\xa2\xc3\x28", b"\xa3\xed\xa0\x80", b"\xa1\xff"]))
        elif kind == "duplicate_key":
            data = encoding.pack(wire)
            # a second "dob" key: rewrite the map header to claim one more pair
            return bytes([data[0] + 1]) + data[1:] + encoding.pack("dob") + encoding.pack(
                "2010-01-01") if data[0] < 0x8F else data
        elif kind == "trailing":
            return encoding.pack(wire) + b"\xc0"
        data = encoding.pack(wire)
        return _flip(data, rng, rng.randint(1, 4)) if kind == "flip" else data

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
        header: dict[str, Any] = {"council": ESX, "seq": seq, "prev": prev,
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
            header["council"] = "E10000032"
        elif kind == "deep":
            return _splice(header | {"ops": ["@@DEEP@@"]}, "@@DEEP@@",
                           b"\x91" * rng.choice([100, 100_000]) + b"\xc0")
        elif kind == "bad_utf8":
            return _splice(header | {"issued_at": "@@UTF8@@"}, "@@UTF8@@", b"\xa2\xc3\x28")
        data = encoding.pack(header)
        return _flip(data, rng, rng.randint(1, 3)) if kind == "flip" else data


async def _state(hub: Hub) -> tuple[int, dict[str, tuple[int, str | None]]]:
    async with hub.pool.acquire() as conn:
        cursor = await conn.fetchval("SELECT cursor_seq FROM councils WHERE code = $1", ESX)
        rows = await conn.fetch("SELECT local_id, version, digest FROM records"
                                " WHERE council_code = $1", ESX)
    return cursor, {r["local_id"]: (r["version"], r["digest"]) for r in rows}


@pytest.fixture
async def hub(make_database, tmp_path: Path):
    async with running_hub(await make_database(), tmp_path) as hub:
        yield hub


async def test_mutated_batches_never_fail_the_hub_or_half_apply(hub: Hub) -> None:
    key = keys.generate()
    await hub.enrol(ESX, keys.public_pem(key.public_key()))
    client = Client(hub, ESX, key)
    hub_public = keys.load_public_key(hub.public_key_file.read_bytes())
    rng = random.Random(SEED)
    fuzz = Fuzzer(rng)
    prev, outcomes = GENESIS, {"accepted": 0, "refused": 0}
    seen: set[str] = set()  # refusal codes and per-op result codes met
    for round_ in range(ROUNDS):
        where = f"seed {SEED} round {round_}"
        cursor, before = await _state(hub)
        payload = fuzz.payload(cursor + 1, prev)
        body = Envelope.sign(BATCH_TYPE, payload, [key]).encode()
        if rng.random() < 0.08:
            body = _flip(body, rng, rng.randint(1, 8))
        status, data, _ = await client.send(body)
        assert status < 500, f"{where}: {status} {data[:300]!r}"
        after_cursor, after = await _state(hub)
        if status != 200:
            error = json.loads(data)["error"]
            assert error["code"] in CODES, f"{where}: {error}"
            assert (after_cursor, after) == (cursor, before), f"{where}: refused but changed"
            if error["code"] in ("prev_mismatch", "seq_gap", "fork"):
                # a flipped bit made another valid seq or prev: the refusal must be right
                sent = Batch.decode(payload)
                assert (sent.seq, sent.prev) != (cursor + 1, prev), f"{where}: {error}"
                async with hub.pool.acquire() as conn:  # the operator's unflag
                    await CouncilStore().clear_fork(conn, ESX)
            assert error["code"] != "council_flagged", where
            outcomes["refused"] += 1
            seen.add(error["code"])
            continue
        outcomes["accepted"] += 1
        receipt_env = Envelope.decode(data)
        assert receipt_env.verified_by(hub_public), where
        receipt = Receipt.decode(receipt_env.payload)
        assert after_cursor == cursor + 1 and receipt.batch_hash == batch_hash(payload), where
        prev = receipt.batch_hash
        try:
            ops = Batch.decode(payload).ops
        except SignpostError:
            pytest.fail(f"{where}: the hub accepted a batch the protocol refuses")
        assert len(receipt.results) == len(ops), where
        final: dict[str, Any] = {}
        for op, result in zip(ops, receipt.results, strict=True):
            assert result.status in ("applied", "rejected", "stale"), where
            if result.status != "applied":
                assert result.code in CODES, f"{where}: {result}"
                seen.add(f"op:{result.code}")
            elif isinstance(op, UpsertOp | DeleteOp):
                final[op.local_id] = op
        for local_id in set(before) | set(after):
            if local_id not in final:
                assert after.get(local_id) == before.get(local_id), f"{where}: {local_id}"
        for local_id, op in final.items():
            digest = op.digest if isinstance(op, UpsertOp) else None
            assert after[local_id] == (op.version, digest), f"{where}: {local_id}"
    # the fuzz reached every kind of answer, not just the signature check
    assert outcomes["accepted"] > ROUNDS // 4 and outcomes["refused"] > ROUNDS // 10, outcomes
    assert {"malformed_msgpack", "malformed_request", "payload_too_large",
            "envelope_bad_signature", "batch_wrong_council", "op:invalid_record",
            "op:stale_version", "op:malformed_request"} <= seen, seen
