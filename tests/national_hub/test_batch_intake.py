"""The hub's batch endpoint through real HTTP: what it applies and what it refuses.

Each refusal must carry its own stable error code and apply nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from national_hub.services.batch_intake import BatchIntake, CheckedOps
from national_hub.storage.records import HELD_SQL, RecordRow, RecordStore
from protocol import encoding, keys, request_auth
from protocol.batch import GENESIS, Batch, DeleteOp, Receipt, UpsertOp
from protocol.retention import RetentionPolicy
from protocol.signing import BATCH_TYPE, RECEIPT_TYPE, Envelope
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, error_code, record
from tests.plans import generic_plan

ESX, WSX = "E10000011", "E10000032"


async def records_held(hub: Hub, council: str = ESX) -> int:
    return int(await hub.fetchval(
        "SELECT count(*) FROM records WHERE council_code = $1 AND record IS NOT NULL", council))


async def test_batch_applied_with_signed_receipt_and_exact_bytes(hub: Hub, esx: Client) -> None:
    ops = [UpsertOp.of(record("L1"), 1), UpsertOp.of(record("L2", nhs=None), 1)]
    body, hash_ = batch_bytes(ESX, 1, GENESIS, ops, esx.key)
    status, data, _ = await esx.send(body)
    assert status == 200, data
    receipt_env = Envelope.decode(data)
    hub_public = keys.load_public_key(hub.public_key_file.read_bytes())
    assert receipt_env.payload_type == RECEIPT_TYPE and receipt_env.verified_by(hub_public)
    receipt = Receipt.decode(receipt_env.payload)
    assert (receipt.seq, receipt.batch_hash) == (1, hash_)
    assert [r.status for r in receipt.results] == ["applied", "applied"]
    # the hub keeps the exact record bytes: digests match the node's
    assert await hub.digests(ESX) == {op.local_id: op.digest for op in ops}
    assert await hub.fetchval("SELECT envelope FROM batches WHERE seq = 1") == body


async def test_same_batch_again_returns_the_stored_receipt(hub: Hub, esx: Client) -> None:
    body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 1)], esx.key)
    status1, receipt1, _ = await esx.send(body)
    status2, receipt2, _ = await esx.send(body)
    assert status1 == status2 == 200
    assert receipt1 == receipt2
    assert await hub.fetchval("SELECT count(*) FROM batches") == 1


async def test_invalid_nhs_number_rejected_alone(hub: Hub, esx: Client) -> None:
    good = UpsertOp.of(record("L1"), 1)
    bad_wire = record("L2", nhs=None).to_wire() | {"nhs_number": "9434765918"}
    bad = UpsertOp("L2", 1, encoding.pack(bad_wire))
    body, _ = batch_bytes(ESX, 1, GENESIS, [good, bad, DeleteOp("L3", 1)], esx.key)
    status, data, _ = await esx.send(body)
    assert status == 200
    results = Receipt.decode(Envelope.decode(data).payload).results
    assert [r.status for r in results] == ["applied", "rejected", "applied"]
    assert results[1].code == "invalid_record" and "nhs_number" in (results[1].message or "")
    assert await hub.digests(ESX) == {"L1": good.digest}


async def test_older_version_is_stale(hub: Hub, esx: Client) -> None:
    body1, h1 = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 5)], esx.key)
    assert (await esx.send(body1))[0] == 200
    older = UpsertOp.of(record("L1"), 4)
    body2, _ = batch_bytes(ESX, 2, h1, [older], esx.key)
    status, data, _ = await esx.send(body2)
    assert status == 200
    assert Receipt.decode(Envelope.decode(data).payload).results[0].status == "stale"


async def test_one_batch_inserts_new_records_and_updates_held_ones(hub: Hub,
                                                                    esx: Client) -> None:
    # held and new records are written by two statements: an update, a record deleted
    # before (its tombstone held) and a new one in one batch all apply, as themselves
    first = [UpsertOp.of(record("L1"), 1), UpsertOp.of(record("L2", nhs=None), 1)]
    body1, h1 = batch_bytes(ESX, 1, GENESIS, first, esx.key)
    assert (await esx.send(body1))[0] == 200
    body2, h2 = batch_bytes(ESX, 2, h1, [DeleteOp("L2", 2)], esx.key)
    assert (await esx.send(body2))[0] == 200
    ops = [UpsertOp.of(replace(record("L1"), given_name="Amara"), 2),
           UpsertOp.of(replace(record("L2", nhs=None), given_name="Zara"), 3),
           UpsertOp.of(replace(record("L3", nhs=None), given_name="Kofi"), 1)]
    body3, _ = batch_bytes(ESX, 3, h2, ops, esx.key)
    status, data, _ = await esx.send(body3)
    assert status == 200, data
    assert [r.status for r in Receipt.decode(Envelope.decode(data).payload).results] == [
        "applied"] * 3
    assert await hub.digests(ESX) == {op.local_id: op.digest for op in ops}
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT local_id, version, given_name, link_status IS NOT NULL"
                                " FROM records WHERE council_code = $1 ORDER BY local_id", ESX)
    assert [tuple(r) for r in rows] == [("L1", 2, "Amara", True), ("L2", 3, "Zara", True),
                                        ("L3", 1, "Kofi", True)]


async def test_inserting_a_held_record_as_new_fails_rather_than_overwrites(
        hub: Hub, esx: Client) -> None:
    body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 1)], esx.key)
    assert (await esx.send(body))[0] == 200
    op = UpsertOp.of(replace(record("L1"), given_name="Other"), 2)
    row = RecordRow(local_id="L1", version=2, record=op.record, digest=op.digest,
                    given_name="Other", family_name=None, dob=None, sex=0, postcode=None,
                    nhs_number=None, upn=None, shielded=False, link_status="pending")
    async with hub.pool.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await RecordStore().upsert(conn, ESX, 2, [row], new=True)
    assert await hub.digests(ESX) == {"L1": UpsertOp.of(record("L1"), 1).digest}


async def test_a_batch_looks_each_record_up_by_its_key_whatever_plan_is_kept(
        hub: Hub, esx: Client) -> None:
    """What the hub holds of a batch's records is read one primary-key lookup an id, in
    the plan a connection keeps after five batches too. As ``local_id = ANY($2)`` that
    plan read every record of the council and searched the list for each (40 s instead
    of 0.7 s over a 228,771-record load); as a join the planner may hash them all."""
    ops = [UpsertOp.of(replace(record(f"L{i:03}"), given_name=f"Amelia{i:03}"), 1)
           for i in range(300)]
    body, _ = batch_bytes(ESX, 1, GENESIS, ops, esx.key)
    assert (await esx.send(body))[0] == 200
    async with hub.pool.acquire() as conn:
        await conn.execute("ANALYZE records")
        held = await RecordStore().held(conn, ESX, ["L007", "L299", "missing"])
        plan = await generic_plan(conn, "text, text[]", HELD_SQL, f"'{ESX}', '{{L007,L299}}'")
    assert sorted(held) == ["L007", "L299"] and held["L007"].version == 1
    assert "Function Scan on unnest" in plan and "Hash" not in plan, plan
    assert "Index Cond: ((council_code = $1) AND (local_id = w.local_id))" in plan, plan


@pytest.mark.parametrize("case", [
    "forged_envelope", "forged_request", "other_council_key", "revoked_key", "replayed_nonce",
    "stale_timestamp", "seq_gap", "malformed_msgpack", "too_large", "wrong_council_in_batch",
])
async def test_refusals_apply_nothing(make_database: DatabaseFactory, tmp_path: Path,
        case: str) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        hub.server.app  # noqa: B018 - the app is up
        esx_key, wsx_key = keys.generate(), keys.generate()
        esx_kid = await hub.enrol(ESX, keys.public_pem(esx_key.public_key()))
        await hub.enrol(WSX, keys.public_pem(wsx_key.public_key()))
        client = Client(hub, ESX, esx_key)
        ops = [UpsertOp.of(record("L1"), 1)]
        body, _ = batch_bytes(ESX, 1, GENESIS, ops, esx_key)
        kwargs: dict = {}
        expected = {
            "forged_envelope": (401, "envelope_bad_signature"),
            "forged_request": (401, "auth_bad_signature"),
            "other_council_key": (403, "key_wrong_council"),
            "revoked_key": (403, "key_revoked"),
            "replayed_nonce": (401, "auth_replayed_nonce"),
            "stale_timestamp": (401, "auth_stale_timestamp"),
            "seq_gap": (409, "seq_gap"),
            "malformed_msgpack": (400, "malformed_msgpack"),
            "too_large": (413, "payload_too_large"),
            "wrong_council_in_batch": (403, "batch_wrong_council"),
        }[case]
        if case == "forged_envelope":
            # signed by a key that claims to be the council's
            forged = Envelope.sign(BATCH_TYPE, Envelope.decode(body).payload, [keys.generate()])
            sig = forged.signatures[0]
            body = Envelope(forged.payload_type, forged.payload,
                            (type(sig)(kid=esx_kid, sig=sig.sig),)).encode()
        elif case == "forged_request":
            headers = request_auth.sign_request(keys.generate(), "POST",
                                                f"/v1/councils/{ESX}/batches", body, ESX)
            headers[request_auth.H_KEY_ID] = esx_kid
            kwargs["headers"] = headers
        elif case == "other_council_key":
            kwargs["key"] = wsx_key
            body, _ = batch_bytes(ESX, 1, GENESIS, ops, wsx_key)
        elif case == "revoked_key":
            await hub.fetchval("UPDATE council_keys SET revoked_at = now() WHERE kid = $1",
                               esx_kid)
        elif case == "replayed_nonce":
            first = await client.send(body)
            assert first[0] == 200
            await hub.fetchval("DELETE FROM records")  # would reappear if the replay applied
            await hub.fetchval("DELETE FROM batches")
            await hub.fetchval("UPDATE councils SET cursor_seq = 0, cursor_hash = $1", GENESIS)
            kwargs["headers"] = first[2]
        elif case == "stale_timestamp":
            kwargs["now"] = time.time() - 301
        elif case == "seq_gap":
            body, _ = batch_bytes(ESX, 3, GENESIS, ops, esx_key)
        elif case == "malformed_msgpack":
            body = b"\xc1\x00garbage"
        elif case == "too_large":
            body = body + b"\x00" * (17 * 1024 * 1024)
        elif case == "wrong_council_in_batch":
            body, _ = batch_bytes(WSX, 1, GENESIS, ops, esx_key)
        status, data, _ = await client.send(body, **kwargs)
        assert (status, error_code(data)) == expected, data
        assert await records_held(hub) == 0
        if case == "seq_gap":
            import json
            assert json.loads(data)["error"]["detail"]["expected_seq"] == 1


async def test_fork_flags_the_council(hub: Hub, esx: Client) -> None:
    body1, h1 = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 1)], esx.key)
    assert (await esx.send(body1))[0] == 200
    other, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L9"), 1)], esx.key)
    status, data, _ = await esx.send(other)
    assert (status, error_code(data)) == (409, "fork")
    assert await hub.fetchval("SELECT forked_at IS NOT NULL FROM councils WHERE code = $1", ESX)
    # the council's next batch is refused until an operator clears the flag
    body2, _ = batch_bytes(ESX, 2, h1, [UpsertOp.of(record("L2"), 1)], esx.key)
    status, data, _ = await esx.send(body2)
    assert (status, error_code(data)) == (409, "council_flagged")
    assert set(await hub.digests(ESX)) == {"L1"}


async def test_a_batch_out_of_place_is_refused_before_its_records_are_validated(
        hub: Hub, esx: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validating every record of a batch is the costly part of intake (a 10,000-op
    batch: about a second of CPU). A resend, a fork, a batch far ahead of the cursor and
    any batch of a flagged council get the same answer as ever, without that work."""
    validated: list[int] = []
    check = BatchIntake._check_ops

    def counting(batch: Batch, policy: RetentionPolicy) -> CheckedOps:
        validated.append(batch.seq)
        return check(batch, policy)

    monkeypatch.setattr(BatchIntake, "_check_ops", staticmethod(counting))
    ops = [UpsertOp.of(record(f"L{i}", nhs=None), 1) for i in range(50)]
    body1, h1 = batch_bytes(ESX, 1, GENESIS, ops, esx.key)
    status, receipt, _ = await esx.send(body1)
    assert status == 200 and validated == [1]

    status, again, _ = await esx.send(body1)  # a resend: the stored receipt
    assert (status, again) == (200, receipt)
    far, _ = batch_bytes(ESX, 10, h1, ops, esx.key)  # beyond the pipeline window
    status, data, _ = await esx.send(far)
    assert (status, error_code(data)) == (409, "seq_gap")
    assert json.loads(data)["error"]["detail"]["expected_seq"] == 2
    other, _ = batch_bytes(ESX, 1, GENESIS, ops[:49], esx.key)  # another batch 1
    status, data, _ = await esx.send(other)
    assert (status, error_code(data)) == (409, "fork")
    body2, _ = batch_bytes(ESX, 2, h1, ops, esx.key)
    status, data, _ = await esx.send(body2)
    assert (status, error_code(data)) == (409, "council_flagged")
    assert validated == [1]


async def test_cursor_and_heartbeat(hub: Hub, esx: Client) -> None:
    body1, h1 = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 1)], esx.key)
    await esx.send(body1)
    status, data, _ = await esx.send(b"", method="GET", tail="cursor")
    assert status == 200 and encoding.unpack(data) == {"council": ESX, "seq": 1, "hash": h1}
    beat = encoding.pack({"head_seq": 4, "outbox_depth": 12, "sent_at": "2026-11-25T10:00:00Z"})
    status, _, _ = await esx.send(beat, tail="heartbeats")
    assert status == 200
    assert await hub.fetchval("SELECT outbox_depth FROM heartbeats WHERE council_code = $1",
                              ESX) == 12


async def test_unknown_routes_and_bad_paths_are_clean_errors(hub: Hub, esx: Client) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(hub.url + "/v1/nothing") as resp:
            assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
        async with session.post(hub.url + "/v1/councils/E10000011/batches", data=b"x") as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "auth_missing"
        async with session.post(hub.url + "/v1/councils/nope/batches", data=b"x") as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "invalid_field"
