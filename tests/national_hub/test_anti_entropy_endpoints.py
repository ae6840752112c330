"""The hub's anti-entropy endpoints over real HTTP, its SQL bucket digests against the
protocol's Python ones, and the batch rule that lets a node repair a damaged row at the
version the hub holds (and only a damaged one)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from national_hub.storage.anti_entropy import AntiEntropyStore
from protocol import encoding, keys
from protocol.anti_entropy import (
    MAX_BUCKETS_PER_REQUEST,
    MAX_HELD_PER_ANSWER,
    MAX_PER_BUCKET,
    BucketRecords,
    BucketRecordsRequest,
    DigestRequest,
    DigestSummary,
    HeldEntry,
    bucket_of,
    summarise,
)
from protocol.batch import GENESIS, DeleteOp, Receipt, UpsertOp
from protocol.signing import Envelope
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, error_code, record

ESX = "E10000011"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"


async def test_sql_bucket_digests_agree_with_the_protocol(hub: Hub, esx: Client) -> None:
    rng = random.Random(5)
    held: dict[str, tuple[int, str]] = {}
    while len(held) < 400:
        local_id = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 64)))
        if local_id in held:
            continue
        data = rng.randbytes(rng.randint(1, 300))
        held[local_id] = (rng.randint(1, 2**63 - 1), encoding.sha256_hex(data))
        async with hub.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO records (council_code, local_id, version, record, digest, batch_seq,"
                " fingerprint) VALUES ($1, $2, $3, $4, $5, 1, record_fingerprint("
                " NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, NULL))",
                ESX, local_id, held[local_id][0], data, held[local_id][1])
    async with hub.pool.acquire() as conn:
        await conn.execute("INSERT INTO records (council_code, local_id, version, batch_seq)"
                           " VALUES ($1, 'tombstone', 3, 1)", ESX)  # never in a digest
        store = AntiEntropyStore()
        for bits in (0, 1, 4, 9, 16):
            sql = {b.bucket: b for b in await store.bucket_digests(conn, ESX, bits)}
            assert sql == summarise(held, bits)
        some = sorted({bucket_of(lid, 9) for lid in list(held)[:20]})
        rows = await store.bucket_records(conn, ESX, 9, some)
    assert {r.local_id for r in rows} == {lid for lid in held if bucket_of(lid, 9) in some}
    assert all(r.state == "live" and (r.version, r.digest) == held[r.local_id] for r in rows)


async def _apply(esx: Client, seq: int, prev: str, ops: list) -> tuple[list[str], str]:
    body, hash_ = batch_bytes(ESX, seq, prev, ops, esx.key)
    status, data, _ = await esx.send(body)
    assert status == 200, data
    return [r.status for r in Receipt.decode(Envelope.decode(data).payload).results], hash_


async def test_digests_and_drill_down_over_http(hub: Hub, esx: Client) -> None:
    ops = [UpsertOp.of(record(f"L{i}", nhs=None), 1) for i in range(5)]
    _, _ = await _apply(esx, 1, GENESIS, [*ops, DeleteOp("L9", 2)])
    status, data, _ = await esx.send(DigestRequest(3).encode(), tail="digests")
    assert status == 200, data
    summary = DigestSummary.decode(data)
    assert summary.council == ESX and summary.records == 5
    assert summary.by_bucket() == summarise({op.local_id: (1, op.digest) for op in ops}, 3)

    buckets = [bucket_of("L0", 3), bucket_of("L9", 3)]
    status, data, _ = await esx.send(BucketRecordsRequest(3, tuple(buckets)).encode(),
                                     tail="digests/records")
    assert status == 200, data
    held = {e.local_id: e for e in BucketRecords.decode(data).records}
    assert held["L0"] == HeldEntry("L0", 1, "live", ops[0].digest)
    assert held["L9"] == HeldEntry("L9", 2, "deleted")  # tombstones carry their version


@pytest.mark.parametrize(("tail", "body", "status", "code"), [
    ("digests", encoding.pack({"bits": 17}), 400, "invalid_field"),
    ("digests", encoding.pack({"bits": True}), 400, "invalid_field"),
    ("digests", encoding.pack([1]), 400, "malformed_request"),
    ("digests", b"\xc1", 400, "malformed_msgpack"),
    ("digests/records", encoding.pack({"bits": 2, "buckets": [4]}), 400, "invalid_field"),
    ("digests/records", encoding.pack({"bits": 2, "buckets": []}), 400, "invalid_field"),
    ("digests/records", encoding.pack({"bits": 2, "buckets": ["1"]}), 400, "invalid_field"),
    ("digests/records", encoding.pack({"bits": 16, "buckets": list(
        range(MAX_BUCKETS_PER_REQUEST + 1))}), 413, "payload_too_large"),
])
async def test_bad_requests_are_refused_with_a_code(esx: Client, tail: str, body: bytes,
                                                    status: int, code: str) -> None:
    got, data, _ = await esx.send(body, tail=tail)
    assert (got, error_code(data)) == (status, code)


async def test_requests_must_be_signed_by_the_council(hub: Hub, esx: Client) -> None:
    body = DigestRequest(0).encode()
    status, data, _ = await esx.send(body, tail="digests", headers={"X-Unsigned": "1"})
    assert (status, error_code(data)) == (401, "auth_missing")
    status, data, _ = await esx.send(body, tail="digests", key=keys.generate())
    assert (status, error_code(data)) == (401, "unknown_key")


async def test_same_version_upsert_repairs_only_a_damaged_row(hub: Hub, esx: Client) -> None:
    good = UpsertOp.of(record("L1", nhs=None), 4)
    _, h1 = await _apply(esx, 1, GENESIS, [good])
    # Intact: the same version again is stale, even with other content.
    other = UpsertOp.of(record("L1", nhs="9434765919"), 4)
    statuses, h2 = await _apply(esx, 2, h1, [other])
    assert statuses == ["stale"]
    async with hub.pool.acquire() as conn:
        await conn.execute("UPDATE records SET family_name = 'Smith' WHERE local_id = 'L1'")
    statuses, h3 = await _apply(esx, 3, h2, [good])
    assert statuses == ["applied"]
    assert await hub.fetchval("SELECT family_name FROM records WHERE local_id = 'L1'") == "Okafor"
    assert await hub.fetchval("SELECT record_intact(r) FROM records r WHERE local_id = 'L1'")
    # An older version never repairs anything, damaged or not.
    async with hub.pool.acquire() as conn:
        await conn.execute("UPDATE records SET record = record || '\\x00'::bytea")
    statuses, _ = await _apply(esx, 4, h3, [UpsertOp.of(record("L1", nhs=None), 3)])
    assert statuses == ["stale"]


async def _raw_rows(hub: Hub, council: str, count: int) -> None:
    """``count`` live rows of the council, written straight into the hub's table (as
    many as a large council holds, without publishing them)."""
    async with hub.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO records (council_code, local_id, version, record, digest, batch_seq,"
            " fingerprint) SELECT $1, 'R' || g, 1, '\\x00'::bytea, repeat('a', 64), 1,"
            " record_fingerprint(NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL,"
            " NULL, NULL) FROM generate_series(1, $2) g", council, count)


async def test_too_few_bits_for_what_the_hub_holds_are_refused(hub: Hub, esx: Client) -> None:
    """``bits = 0`` asked the hub to aggregate, hold and send every record of the council
    in one bucket: now it must give buckets of at most MAX_PER_BUCKET on average."""
    await _raw_rows(hub, ESX, MAX_PER_BUCKET * 2 + 1)  # needs 2 bits
    for bits in (0, 1):
        status, data, _ = await esx.send(DigestRequest(bits).encode(), tail="digests")
        assert (status, error_code(data)) == (400, "invalid_field"), data
        assert json.loads(data)["error"]["detail"] == {"field": "bits", "min_bits": 2}
        status, data, _ = await esx.send(BucketRecordsRequest(bits, (0,)).encode(),
                                         tail="digests/records")
        assert (status, error_code(data)) == (400, "invalid_field"), data
    status, data, _ = await esx.send(DigestRequest(2).encode(), tail="digests")
    assert status == 200 and DigestSummary.decode(data).records == MAX_PER_BUCKET * 2 + 1


async def test_a_drill_down_answers_a_bounded_number_of_rows(hub: Hub, esx: Client) -> None:
    await _raw_rows(hub, ESX, MAX_HELD_PER_ANSWER + 500)  # 7 bits: 128 buckets
    every = tuple(range(2**7))
    status, data, _ = await esx.send(BucketRecordsRequest(7, every).encode(),
                                     tail="digests/records")
    assert (status, error_code(data)) == (413, "payload_too_large")
    status, data, _ = await esx.send(BucketRecordsRequest(7, every[:64]).encode(),
                                     tail="digests/records")
    assert status == 200 and len(BucketRecords.decode(data).records) < MAX_HELD_PER_ANSWER


async def test_digest_summaries_have_an_allowance_of_their_own(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Each summary is a pass over every record of the council (1.3 s at 246,000), and a
    node could ask for one at its whole request allowance (3,000 a minute): summaries now
    count against ``rate_limits.per_council_digests`` too, and drill-downs (0.38 s each)
    against ``per_council_drilldowns``; each allowance holds back only its own kind."""
    async with running_hub(await make_database(), tmp_path,
                           rate_limits={"per_council_digests": 2,
                                        "per_council_drilldowns": 3}) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        esx = Client(hub, ESX, key)
        for _ in range(2):
            assert (await esx.send(DigestRequest(0).encode(), tail="digests"))[0] == 200
        status, data, _ = await esx.send(DigestRequest(0).encode(), tail="digests")
        assert (status, error_code(data)) == (429, "rate_limited")
        assert json.loads(data)["error"]["retryable"] is True
        # the council's drill-downs are not held back by it, but have their own
        drill = BucketRecordsRequest(0, (0,)).encode()
        for _ in range(3):
            status, data, _ = await esx.send(drill, tail="digests/records")
            assert status == 200, data
        status, data, _ = await esx.send(drill, tail="digests/records")
        assert (status, error_code(data)) == (429, "rate_limited")
        told = json.loads(data)["error"]  # when to ask again, for the node's reconcile
        assert told["retryable"] is True and 1 <= told["detail"]["retry_after"] <= 60
        # and the council's other requests go on
        assert (await esx.send(b"", method="GET", tail="cursor"))[0] == 200
