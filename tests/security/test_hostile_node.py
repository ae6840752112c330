"""A hostile or compromised council node against the hub (docs/security.md "The attack
surface"): every request below is signed with the council's own enrolled key, as a
node would sign it, so it reaches the decoders and the database. Whatever it sends,
the hub answers a clean 4xx with a stable code (never a 500 from the database refusing
a value), refuses the bad thing alone, and leaves everything else as it was.

PostgreSQL refuses a NUL character in text and a time beyond its range; Python strings
and datetimes hold both, so each value a node can send that reaches a text or time
column must be refused before it gets there.
"""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from national_hub.handlers import appkeys as app_keys
from national_hub.services.container import HubServices
from protocol import encoding, keys, request_auth
from protocol.batch import GENESIS, Batch, Receipt, UpsertOp, batch_hash
from protocol.records import ChildRecord
from protocol.signing import BATCH_TYPE, Envelope
from server_common.accounts import Role
from server_common.audit import checkpoint
from server_common.config import ConfigError
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, hub_config, running_hub
from tests.national_hub.helpers import Client, error_code, record

ESX = "E10000011"
WSX = "E10000032"


def _receipt(answer: bytes) -> Receipt:
    return Receipt.decode(Envelope.decode(answer).payload)


async def test_a_nul_in_a_former_family_name_rejects_that_record_alone(
        hub: Hub, esx: Client) -> None:
    """The record decoder's fast path hands a record with a control character to the
    reference decoder, which took one in ``former_family_names``: the row then reached
    PostgreSQL and the whole batch failed with a 500, retried by the node forever."""
    wire = record("A2").to_wire()
    wire["former_family_names"] = ["Smi\x00th"]
    ops = (UpsertOp.of(record("A1"), 1), UpsertOp("A2", 1, encoding.pack(wire)))
    payload = Batch(ESX, 1, GENESIS, "2026-11-25T10:00:00Z", ops).encode()
    status, answer, _ = await esx.send(Envelope.sign(BATCH_TYPE, payload, [esx.key]).encode())
    assert status == 200, answer
    results = _receipt(answer).results
    assert [r.status for r in results] == ["applied", "rejected"]
    assert results[1].code == "invalid_record" and "former_family_names" in str(
        results[1].message)
    assert await hub.fetchval("SELECT count(*) FROM records WHERE council_code = $1",
                              ESX) == 1
    assert await hub.fetchval("SELECT cursor_hash FROM councils WHERE code = $1",
                              ESX) == batch_hash(payload)


async def test_a_signature_hint_that_is_no_key_id_is_passed_over(
        hub: Hub, esx: Client) -> None:
    """The kid of an envelope's signature is only a hint: one that cannot be a key id
    (here a NUL) was looked up in the database as it came, a 500 for the batch. It is
    passed over like any kid nobody enrolled; the council's own signature still counts."""
    payload = Batch(ESX, 1, GENESIS, "2026-11-25T10:00:00Z",
                    (UpsertOp.of(record("A1"), 1),)).encode()
    envelope = Envelope.sign(BATCH_TYPE, payload, [esx.key]).to_wire()
    envelope["signatures"].insert(0, {"kid": "\x00", "sig": bytes(64)})
    status, answer, _ = await esx.send(encoding.pack(envelope))
    assert status == 200, answer
    assert [r.status for r in _receipt(answer).results] == ["applied"]
    # only the odd hint: refused as unsigned, nothing applied
    payload = Batch(ESX, 2, batch_hash(payload), "2026-11-25T10:00:00Z",
                    (UpsertOp.of(record("A2"), 1),)).encode()
    alone = {"payload_type": BATCH_TYPE, "payload": payload,
             "signatures": [{"kid": "a\x00", "sig": bytes(64)}]}
    status, answer, _ = await esx.send(encoding.pack(alone))
    assert (status, error_code(answer)) == (401, "envelope_bad_signature")
    assert await hub.fetchval("SELECT cursor_seq FROM councils WHERE code = $1", ESX) == 1


@pytest.mark.parametrize("sent_at", ["9999-12-31T23:59:59-14:00",
                                     "0001-01-01T00:00:00+14:00"])
async def test_a_heartbeat_time_beyond_the_calendar_in_utc_is_a_400(
        hub: Hub, esx: Client, sent_at: str) -> None:
    """A valid ISO 8601 time whose UTC instant falls outside year 1 to 9999 could not be
    sent to the database (a 500)."""
    status, answer, _ = await esx.send(
        encoding.pack({"head_seq": 1, "outbox_depth": 0, "sent_at": sent_at}),
        tail="heartbeats")
    assert (status, error_code(answer)) == (400, "invalid_field")
    assert await hub.fetchval("SELECT count(*) FROM heartbeats") == 0
    # a time with an offset is still taken
    status, _, _ = await esx.send(encoding.pack(
        {"head_seq": 1, "outbox_depth": 0, "sent_at": "2026-11-25T10:00:00+01:00"}),
        tail="heartbeats")
    assert status == 200
    assert await hub.fetchval("SELECT sent_at FROM heartbeats") == datetime(
        2026, 11, 25, 9, tzinfo=UTC)


async def test_a_nul_in_a_witness_refusal_is_a_400(hub: Hub, esx: Client) -> None:
    status, answer, _ = await esx.send(encoding.pack({"reason": "trunc\x00ation"}),
                                       tail="audit/refusals")
    assert (status, error_code(answer)) == (400, "invalid_field")
    assert await hub.fetchval("SELECT count(*) FROM audit_witness_alarms") == 0


def _signed_note(key: Ed25519PrivateKey, origin: str, extension: str = "") -> str:
    """A node log checkpoint signed with the council's key, as signed-note makes one."""
    text = checkpoint.checkpoint_text(origin, 3, bytes(32), datetime.now(UTC)) + extension
    blob = base64.b64encode(checkpoint.key_hash(origin, key.public_key())
                            + key.sign(text.encode())).decode()
    return f"{text}\n\u2014 {origin} {blob}\n"


@pytest.mark.parametrize("where", ["origin", "extension line"])
async def test_a_nul_in_a_node_log_checkpoint_is_a_400(hub: Hub, esx: Client,
                                                       where: str) -> None:
    """A checkpoint the council's key really signed, kept (or refused as evidence) with
    its note as text: a NUL in it was a 500."""
    origin = f"signpost-node-{ESX}/audit"
    note = (_signed_note(esx.key, origin + "\x00") if where == "origin"
            else _signed_note(esx.key, origin, "x\x00\n"))
    status, answer, _ = await esx.send(encoding.pack({"note": note, "first": 0}),
                                       tail="audit/node-log")
    assert (status, error_code(answer)) == (400, "invalid_field")
    # the same without the NUL is kept
    status, _, _ = await esx.send(encoding.pack({"note": _signed_note(esx.key, origin),
                                                 "first": 0}), tail="audit/node-log")
    assert status == 200


async def test_nonces_are_kept_as_long_as_a_request_can_be_fresh(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A request stamped 300 s ahead of the hub's clock is fresh until 600 s after the hub
    first saw it: a nonce forgotten sooner lets a network attacker replay it. A hub
    configured with ``nonce_ttl`` under 600 s accepted the replay below (the nonce purged
    as it is after 301 s, the timestamp still within ±300 s); it is now refused at start."""
    for too_short in ("300s", "599s"):
        with pytest.raises(ConfigError, match="nonce_ttl"):
            hub_config("postgresql:///unused", tmp_path, nonce_ttl=too_short)
    hub_config("postgresql:///unused", tmp_path, nonce_ttl="600s")
    # what the 300 s configuration allowed, on a hub with the shortest ttl it takes
    async with running_hub(await make_database(), tmp_path, nonce_ttl="600s") as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        esx = Client(hub, ESX, key)
        path = f"/v1/councils/{ESX}/cursor"
        captured = request_auth.sign_request(key, "GET", path, b"", ESX,
                                             now=time.time() + 299)
        assert (await esx.send(b"", method="GET", tail="cursor", headers=captured))[0] == 200
        await hub.fetchval("UPDATE request_nonces SET seen_at = seen_at - interval '301 s'")
        await hub.server.app[app_keys.NODE_AUTH].purge_nonces(hub.config.hub.nonce_ttl)
        status, answer, _ = await esx.send(b"", method="GET", tail="cursor", headers=captured)
        assert (status, error_code(answer)) == (401, "auth_replayed_nonce")


async def test_a_date_of_death_in_year_9999_does_not_stop_retention_for_other_councils(
        hub: Hub, esx: Client) -> None:
    """A record's date of death has no upper bound. One in year 9999 made the hub's
    retention job compute "a year after death" as year 10000 (ValueError): the run
    stopped at that council, so no council after it was ever archived or purged."""
    dead_later = replace(record("A1"), date_of_death=date(9999, 12, 31))
    payload = Batch(ESX, 1, GENESIS, "2026-11-25T10:00:00Z",
                    (UpsertOp.of(dead_later, 1),)).encode()
    status, answer, _ = await esx.send(Envelope.sign(BATCH_TYPE, payload, [esx.key]).encode())
    assert status == 200 and [r.status for r in _receipt(answer).results] == ["applied"]
    key = keys.generate()
    await hub.enrol(WSX, keys.public_pem(key.public_key()))
    grown_up = replace(record("W1", nhs=None), dob=date(2000, 1, 1))
    payload = Batch(WSX, 1, GENESIS, "2026-11-25T10:00:00Z",
                    (UpsertOp.of(grown_up, 1),)).encode()
    status, _, _ = await Client(hub, WSX, key).send(
        Envelope.sign(BATCH_TYPE, payload, [key]).encode())
    assert status == 200

    report = await HubServices(hub.config, hub.pool).retention.run(date(2030, 1, 1))
    assert report.councils[WSX].purged == ["W1"]
    assert ESX not in report.councils  # live until 18, as if it had no date of death
    assert await hub.fetchval("SELECT archived_on FROM records WHERE local_id = 'A1'") is None


TWR = "E06000020"
COPIES = 260  # past the resolver's block limit (200) and search's (100)


class _Federation:
    """East Sussex (hostile), West Sussex and Telford and Wrekin enrolled at ``hub``,
    each publishing its first batch signed with its own key."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.signers = {code: keys.generate() for code in (ESX, WSX, TWR)}

    async def enrol(self) -> None:
        for code, key in self.signers.items():
            await self.hub.enrol(code, keys.public_pem(key.public_key()))

    async def publish(self, code: str, records: list[ChildRecord]) -> None:
        payload = Batch(code, 1, GENESIS, "2026-11-25T10:00:00Z",
                        tuple(UpsertOp.of(r, 1) for r in records)).encode()
        key = self.signers[code]
        status, _, _ = await Client(self.hub, code, key).send(
            Envelope.sign(BATCH_TYPE, payload, [key]).encode())
        assert status == 200
        await self.hub.resolved()


async def _flooded(hub: Hub) -> _Federation:
    """West Sussex holds a child; a hostile East Sussex node then publishes COPIES
    copies of the child's identity under its own local ids, so that every blocking key
    of the child (its NHS number among them) is held by more records than any block
    limit."""
    federation = _Federation(hub)
    await federation.enrol()
    child = record("W1")
    await federation.publish(WSX, [child])
    await federation.publish(ESX, [replace(child, local_id=f"H{i}") for i in range(COPIES)])
    return federation


async def test_one_council_flooding_a_childs_keys_does_not_stop_other_councils_linking(
        hub: Hub) -> None:
    """The child moves to Telford and Wrekin, whose record must link to West Sussex's.
    Before, every key of the child held by more than the resolver's block limit (200
    records, whoever held them) was no evidence: Telford's record was left a child of
    its own, and Telford's practitioners were not told West Sussex works with the child.
    Now a council holding more than the limit of a key's holders is skipped for that
    key alone, and the other councils' holders still count."""
    federation = await _flooded(hub)
    await federation.publish(TWR, [replace(record("W1"), local_id="T1")])
    ids = {r["local_id"]: r["national_id"] for r in await hub.pool.fetch(
        "SELECT local_id, national_id FROM records WHERE local_id IN ('W1', 'T1')")}
    assert ids["T1"] == ids["W1"]


@pytest.mark.parametrize("query", [
    {"given_name": "Amelia", "family_name": "Okafor", "dob": "2015-03-14"},
    {"nhs_number": "9434765919"},
])
async def test_one_council_flooding_a_childs_keys_does_not_hide_the_child_from_search(
        hub: Hub, query: dict[str, str]) -> None:
    """A practitioner searching the hub for the child (by name and date of birth, or by
    NHS number) must still be told West Sussex works with the child. Before, every key
    of the child was held by more than search's block limit (100 records) and skipped,
    so the search found nobody: the flood hid a child, perhaps one at risk, from every
    practitioner in the country."""
    await _flooded(hub)
    async with aiohttp.ClientSession() as http, http.get(
            hub.url + "/v1/search", headers=await hub.as_role(Role.PRACTITIONER),
            params={**query, "purpose": "s47 enquiry"}) as resp:
        assert resp.status == 200, await resp.text()
        results = (await resp.json())["results"]
    assert len(results) == 1, results
    assert WSX in {c["code"] for c in results[0]["councils"]}, results
