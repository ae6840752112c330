"""Key rotation at the hub over real HTTP: a council announces its next key, signed by
the old and the new; the hub enrols it and lets the old key run out after an overlap.
Every refusal has its own stable code and changes no key."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from national_hub.cli import main as hub_cli
from protocol import encoding, keys, request_auth
from protocol.batch import GENESIS, UpsertOp
from protocol.key_announcement import KeyAnnouncement, format_timestamp
from protocol.signing import BATCH_TYPE, KEY_ANNOUNCEMENT_TYPE, Envelope
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, error_code, record

ESX, WSX = "E10000011", "E10000032"
WEEK = timedelta(days=7)


def kid(key: Ed25519PrivateKey) -> str:
    return keys.key_id(key.public_key())


def announcement(old: Ed25519PrivateKey, new: Ed25519PrivateKey, council: str = ESX,
                 signers: list[Ed25519PrivateKey] | None = None, **fields: object) -> bytes:
    ann = KeyAnnouncement.of(council, old, new,
                             issued_at=format_timestamp(datetime.now(UTC)))
    payload = encoding.pack(ann.to_wire() | fields)  # fields may break the rules on purpose
    return Envelope.sign(KEY_ANNOUNCEMENT_TYPE, payload,
                         [old, new] if signers is None else signers).encode()


async def announce_raw(hub: Hub, request_key: Ed25519PrivateKey,
                       body: bytes) -> tuple[int, bytes, str | None]:
    """POST an announcement; also return the Signpost-Replayed header."""
    path = f"/v1/councils/{ESX}/keys"
    headers = request_auth.sign_request(request_key, "POST", path, body, ESX)
    async with aiohttp.ClientSession() as session, session.post(
            hub.url + path, data=io.BytesIO(body), headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers.get("Signpost-Replayed")


async def key_row(hub: Hub, key_id: str) -> dict | None:
    async with hub.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT council_code, not_after, revoked_at FROM council_keys"
                                  " WHERE kid = $1", key_id)
    return dict(row) if row else None


async def test_announced_key_is_enrolled_and_the_old_one_gets_an_overlap(
        hub: Hub, esx: Client) -> None:
    old, new = esx.key, keys.generate()
    body = announcement(old, new)
    status, data, replayed = await announce_raw(hub, old, body)
    assert status == 200 and replayed == "false", data
    answer = encoding.unpack(data)
    assert answer["council"] == ESX and answer["kid"] == kid(new)
    assert answer["old_kid"] == kid(old) and "not_after" not in answer
    old_not_after = datetime.fromisoformat(answer["old_not_after"].replace("Z", "+00:00"))
    assert abs(old_not_after - (datetime.now(UTC) + WEEK)) < timedelta(minutes=1)

    assert (await key_row(hub, kid(new))) == {"council_code": ESX, "not_after": None,
                                              "revoked_at": None}
    old_row = await key_row(hub, kid(old))
    assert old_row is not None and old_row["not_after"] is not None
    assert abs(old_row["not_after"] - old_not_after) < timedelta(seconds=1)
    # the exact signed announcement is kept as the proof the council chose the key
    assert await hub.fetchval("SELECT envelope FROM key_announcements WHERE new_kid = $1",
                              kid(new)) == body

    # the new key signs requests and batches; the cursor tells each key its expiry
    batch, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 1)], new)
    assert (await esx.send(batch, key=new))[0] == 200
    _, cursor_new, _ = await esx.send(b"", method="GET", tail="cursor", key=new)
    _, cursor_old, _ = await esx.send(b"", method="GET", tail="cursor", key=old)
    assert "key_not_after" not in encoding.unpack(cursor_new)
    assert encoding.unpack(cursor_old)["key_not_after"] == answer["old_not_after"]

    # the same announcement again: 200, the same answer, nothing moves
    status, again, replayed = await announce_raw(hub, old, body)
    assert status == 200 and encoding.unpack(again) == answer and replayed == "true"
    assert (await key_row(hub, kid(old))) == old_row
    assert await hub.fetchval("SELECT count(*) FROM council_keys") == 2


async def test_overlap_comes_from_configuration(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path,
                           key_rotation_overlap="2h") as hub:
        old, new = keys.generate(), keys.generate()
        await hub.enrol(ESX, keys.public_pem(old.public_key()))
        status, data, _ = await Client(hub, ESX, old).send(announcement(old, new), tail="keys")
        assert status == 200, data
        row = await key_row(hub, kid(old))
        assert row is not None
        assert abs(row["not_after"] - (datetime.now(UTC) + timedelta(hours=2))) < \
            timedelta(minutes=1)


REFUSALS = {
    "signed_only_by_new_key": (401, "announcement_bad_signature"),
    "signed_only_by_old_key": (401, "announcement_bad_signature"),
    "request_signed_by_new_key": (401, "unknown_key"),
    "other_councils_key_signs_request": (403, "key_wrong_council"),
    "other_councils_key_is_old_key": (403, "announcement_wrong_key"),
    "announcement_for_other_council": (403, "announcement_wrong_council"),
    "old_key_revoked": (403, "key_revoked"),
    "old_key_expired": (403, "key_expired"),
    "new_kid_not_of_new_key": (400, "invalid_field"),
    "unknown_field": (400, "invalid_field"),
    "new_key_enrolled_for_other_council": (403, "key_wrong_council"),
    "batch_envelope_instead": (400, "envelope_wrong_type"),
    "not_msgpack": (400, "malformed_msgpack"),
}


async def test_refused_announcements_change_no_key(hub: Hub) -> None:
    """Each case on a council of its own (one hub for all: a hub per case costs seconds)."""
    wsx = keys.generate()
    await hub.enrol(WSX, keys.public_pem(wsx.public_key()))
    for number, case in enumerate(REFUSALS):
        code = f"E9{number:07d}"
        old, new = keys.generate(), keys.generate()
        await hub.enrol(code, keys.public_pem(old.public_key()))
        await _refuse(hub, Client(hub, code, old), wsx, new, case)


async def _refuse(hub: Hub, council: Client, wsx: Ed25519PrivateKey, new: Ed25519PrivateKey,
                  case: str) -> None:
    old, code = council.key, council.council
    body, request_key = announcement(old, new, council=code), old
    if case == "signed_only_by_new_key":
        body = announcement(old, new, council=code, signers=[new])
    elif case == "signed_only_by_old_key":
        body = announcement(old, new, council=code, signers=[old])
    elif case == "request_signed_by_new_key":
        request_key = new
    elif case == "other_councils_key_signs_request":
        body, request_key = announcement(wsx, new, council=code), wsx
    elif case == "other_councils_key_is_old_key":
        body = announcement(wsx, new, council=code)
    elif case == "announcement_for_other_council":
        body = announcement(old, new, council=WSX)
    elif case == "old_key_revoked":
        await hub.fetchval("UPDATE council_keys SET revoked_at = now() WHERE kid = $1", kid(old))
    elif case == "old_key_expired":
        await hub.fetchval("UPDATE council_keys SET not_after = now() WHERE kid = $1", kid(old))
    elif case == "new_kid_not_of_new_key":
        body = announcement(old, new, council=code, new_kid=kid(keys.generate()))
    elif case == "unknown_field":
        body = announcement(old, new, council=code, revoke_old=True)
    elif case == "new_key_enrolled_for_other_council":
        await hub.enrol(WSX, keys.public_pem(new.public_key()))
    elif case == "batch_envelope_instead":
        body = Envelope.sign(BATCH_TYPE, Envelope.decode(body).payload, [old, new]).encode()
    elif case == "not_msgpack":
        body = b"\xc1"
    keys_before = await hub.fetchval("SELECT count(*) FROM council_keys")
    old_before = await key_row(hub, kid(old))

    status, data, _ = await council.send(body, tail="keys", key=request_key)
    assert (status, error_code(data)) == REFUSALS[case], (case, data)
    if case == "signed_only_by_new_key":
        assert json.loads(data)["error"]["detail"] == {"missing": "old", "kid": kid(old)}
    if case == "signed_only_by_old_key":
        assert json.loads(data)["error"]["detail"]["missing"] == "new"
    assert await hub.fetchval("SELECT count(*) FROM council_keys") == keys_before, case
    assert await key_row(hub, kid(old)) == old_before, case
    assert await hub.fetchval("SELECT count(*) FROM key_announcements") == 0, case


async def test_old_key_verifies_in_flight_batches_during_overlap_then_key_expired(
        hub: Hub, esx: Client) -> None:
    old, new = esx.key, keys.generate()
    assert (await esx.send(announcement(old, new), tail="keys"))[0] == 200

    # during the overlap: batches the node signed with the old key before it switched
    # still go through, whichever key signs the request carrying them
    body1, h1 = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 1)], old)
    body2, h2 = batch_bytes(ESX, 2, h1, [UpsertOp.of(record("L2", nhs=None), 1)], old)
    assert (await esx.send(body1, key=old))[0] == 200
    assert (await esx.send(body2, key=new))[0] == 200
    assert await hub.fetchval("SELECT array_agg(kid ORDER BY seq) FROM batches") == \
        [kid(old)] * 2

    # the overlap runs out (aged in SQL rather than waited for)
    await hub.fetchval("UPDATE council_keys SET not_after = now() - interval '1 second'"
                       " WHERE kid = $1", kid(old))
    body3, _ = batch_bytes(ESX, 3, h2, [UpsertOp.of(record("L3", nhs=None), 1)], old)
    status, data, _ = await esx.send(body3, key=new)
    assert (status, error_code(data)) == (403, "key_expired")
    status, data, _ = await esx.send(b"", method="GET", tail="cursor", key=old)
    assert (status, error_code(data)) == (403, "key_expired")
    assert await hub.fetchval("SELECT cursor_seq FROM councils WHERE code = $1", ESX) == 2
    # nor can the expired key announce anything any more
    status, data, _ = await esx.send(announcement(old, keys.generate()), tail="keys", key=old)
    assert (status, error_code(data)) == (403, "key_expired")

    body3_new, _ = batch_bytes(ESX, 3, h2, [UpsertOp.of(record("L3", nhs=None), 1)], new)
    assert (await esx.send(body3_new, key=new))[0] == 200


async def test_a_later_announcement_never_extends_the_old_key(hub: Hub, esx: Client) -> None:
    """An operator's earlier expiry stands; a second rotation from the same key does not
    push the old key's end back."""
    old = esx.key
    soon = datetime.now(UTC) + timedelta(days=2)
    await hub.fetchval("UPDATE council_keys SET not_after = $2 WHERE kid = $1", kid(old), soon)
    status, data, _ = await esx.send(announcement(old, keys.generate()), tail="keys")
    assert status == 200, data
    row = await key_row(hub, kid(old))
    assert row is not None and abs(row["not_after"] - soon) < timedelta(seconds=1)


async def test_announced_expiry_of_the_new_key_is_kept(hub: Hub, esx: Client) -> None:
    old, new = esx.key, keys.generate()
    status, data, _ = await esx.send(
        announcement(old, new, not_after="2031-01-01T00:00:00Z"), tail="keys")
    assert status == 200 and encoding.unpack(data)["not_after"] == "2031-01-01T00:00:00Z"
    row = await key_row(hub, kid(new))
    assert row is not None and row["not_after"] == datetime(2031, 1, 1, tzinfo=UTC)
    past = announcement(old, keys.generate(), issued_at="2020-01-01T00:00:00Z",
                        not_after="2021-01-01T00:00:00Z")
    status, data, _ = await esx.send(past, tail="keys")
    assert (status, error_code(data)) == (400, "invalid_field")


@pytest.fixture
async def hub_env(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    # The CLI runs in this process and sets up its own logging: put the root logger back
    # afterwards (its stream handler would outlive CliRunner's captured stderr).
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": await make_database(),
        "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "hub_key.pem"),
    }
    root.handlers[:] = handlers
    root.setLevel(level)


def test_operator_adds_a_key_with_an_expiry(hub_env: dict[str, str], tmp_path: Path) -> None:
    """``councils add`` on an enrolled council adds a key; ``--expires`` sets not_after."""
    first, second = tmp_path / "first.pub.pem", tmp_path / "second.pub.pem"
    first.write_bytes(keys.public_pem(keys.generate().public_key()))
    second_key = keys.generate()
    second.write_bytes(keys.public_pem(second_key.public_key()))
    runner = CliRunner()

    def hub(*args: str, ok: bool = True) -> str:
        result = runner.invoke(hub_cli, list(args), env=hub_env)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    hub("db", "upgrade")
    hub("councils", "add", ESX, "--name", "East Sussex", "--public-key", str(first))
    out = hub("councils", "add", ESX, "--name", "East Sussex", "--public-key", str(second),
              "--expires", "2030-06-01")
    assert kid(second_key) in out and "expiring 2030-06-01 00:00:00" in out
    listing = hub("councils", "list")
    assert listing.count(" active") == 2
    assert f"key {kid(second_key)} active expires 2030-06-01 00:00:00Z" in listing
    assert "not an ISO date" in hub("councils", "add", ESX, "--name", "East Sussex",
                                    "--public-key", str(second), "--expires", "soon", ok=False)
