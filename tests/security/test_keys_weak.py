"""Finding 8: weak Ed25519 keys and expired enrolments, tried as an attacker would.

The attack: enrol (or announce in a rotation) a small-order public key, such as the
identity point. Then the signature R = identity, S = 0 verifies for every message
under OpenSSL, so anyone can sign requests and batches for that council with no
private key at all. Each way a public key enters is tried here against a real hub
(HTTP on loopback, real PostgreSQL) or the real ``national-hub`` process, and shown
refused with ``weak_key``; a weak key already sitting in an older database verifies
nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from local_node.app import open_publisher
from protocol import ed25519_points, encoding, keys
from protocol.batch import GENESIS, UpsertOp
from protocol.errors import ErrorCode
from protocol.key_announcement import KeyAnnouncement, format_timestamp
from protocol.signing import KEY_ANNOUNCEMENT_TYPE, Envelope
from tests.conftest import DatabaseFactory
from tests.federation import running_node
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, error_code, record
from tests.processes import script

ESX = "E10000011"
IDENTITY = b"\x01" + bytes(31)  # the neutral point: order 1
FORGED = IDENTITY + bytes(32)  # R = identity, S = 0: "valid" for any message under A = O
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # DER of an Ed25519 SPKI, then 32 bytes


class NoPrivateKey:
    """Quacks like an Ed25519PrivateKey for a weak public key, signing without a secret."""

    def __init__(self, raw: bytes = IDENTITY) -> None:
        self.raw = raw

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def sign(self, message: bytes) -> bytes:
        return FORGED


def pem_of(raw: bytes) -> bytes:
    """A PEM public key around any 32 bytes (as an attacker can write one by hand)."""
    body = base64.encodebytes(SPKI_PREFIX + raw).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----\n".encode()


def weak_keys() -> list[tuple[str, bytes]]:
    good = keys.raw_public(keys.generate().public_key())
    out = [(f"torsion-{i}", raw) for i, raw in enumerate(ed25519_points.torsion_points())]
    p = ed25519_points.P
    out += [("y=p", p.to_bytes(32, "little")), ("x=-0", (1 | 1 << 255).to_bytes(32, "little")),
            ("mixed-order", ed25519_points.add_torsion(good, 3))]
    return out


def test_the_forgery_is_real_and_our_loader_refuses_its_key() -> None:
    """Plain Ed25519 (OpenSSL) accepts the forged signature for the identity key; the one
    key loader refuses that key, so nothing is ever verified with it."""
    naive = Ed25519PublicKey.from_public_bytes(IDENTITY)
    for message in (b"a batch", b"any request at all"):
        try:
            naive.verify(FORGED, message)
        except InvalidSignature:  # a stricter OpenSSL one day: the check still holds
            pass
    for loader in (lambda: keys.load_public_key(IDENTITY),
                   lambda: keys.load_public_key(pem_of(IDENTITY)),
                   lambda: keys.public_from_raw(IDENTITY)):
        with pytest.raises(keys.WeakKeyError) as caught:
            loader()
        assert caught.value.code is ErrorCode.WEAK_KEY


def run_hub_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([script("national-hub"), *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


async def test_councils_add_refuses_weak_keys_and_past_expiry(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """The real ``national-hub councils add`` refuses a small-order, a mixed-order and a
    non-canonical key, and a good key whose --expires is past; nothing is enrolled."""
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": url,
                              "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub_key.pem")}
    assert run_hub_cli(env, "db", "upgrade").returncode == 0
    chosen = dict(weak_keys())
    for name in ("torsion-0", "torsion-1", "mixed-order", "y=p"):
        path = tmp_path / f"{name}.pub.pem"
        path.write_bytes(pem_of(chosen[name]))
        done = run_hub_cli(env, "councils", "add", ESX, "--name", "East Sussex",
                           "--public-key", str(path))
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        assert "weak_key" in done.stderr, (name, done.stderr)
    good = tmp_path / "good.pub.pem"
    good.write_bytes(keys.public_pem(keys.generate().public_key()))
    done = run_hub_cli(env, "councils", "add", ESX, "--name", "East Sussex",
                       "--public-key", str(good), "--expires", "2020-01-01")
    assert done.returncode == 1 and "already past" in done.stderr, done.stderr
    async with running_hub(url, tmp_path) as hub:
        assert await hub.fetchval("SELECT count(*) FROM council_keys") == 0
        assert await hub.fetchval("SELECT count(*) FROM councils") == 0
        # each refusal is on the audit record, with its code
        async with hub.pool.acquire() as conn:
            entries = [json.loads(bytes(r["entry"])) for r in
                       await conn.fetch("SELECT entry FROM audit_log ORDER BY seq")]
        assert [(e["action"], e["parameters"]["code"]) for e in entries] == \
            [("council.enrol.refused", "weak_key")] * 4 + \
            [("council.enrol.refused", "invalid_field")]
    done = run_hub_cli(env, "councils", "add", ESX, "--name", "East Sussex",
                       "--public-key", str(good), "--expires", "2099-01-01")
    assert done.returncode == 0, done.stderr


async def test_councils_add_refuses_a_name_that_is_not_the_councils(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A council code mistyped as an enrolled council's would add the new council's key
    to that council: its node could then publish as it. The name tells them apart; a
    blank, overlong or control-character name is refused too (practitioners are told to
    call the council by it). Nothing is enrolled and each refusal is audited."""
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": url,
                              "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub_key.pem")}
    assert run_hub_cli(env, "db", "upgrade").returncode == 0
    first, second = tmp_path / "first.pub.pem", tmp_path / "second.pub.pem"
    for path in (first, second):
        path.write_bytes(keys.public_pem(keys.generate().public_key()))
    for bad, why in (("   ", "a council needs a name"), ("East\tSussex", "control characters"),
                     ("E" * 101, "longer than 100 characters")):
        done = run_hub_cli(env, "councils", "add", ESX, "--name", bad,
                           "--public-key", str(first))
        assert done.returncode == 1 and why in done.stderr, (bad, done.stderr)
    done = run_hub_cli(env, "councils", "add", ESX, "--name", " East Sussex ",
                       "--public-key", str(first))
    assert done.returncode == 0 and "(East Sussex)" in done.stdout, done.stderr
    done = run_hub_cli(env, "councils", "add", ESX, "--name", "West Sussex",
                       "--public-key", str(second))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "E10000011 is enrolled as 'East Sussex', not 'West Sussex'" in done.stderr
    done = run_hub_cli(env, "councils", "add", ESX, "--name", "East Sussex",
                       "--public-key", str(second))  # the council's own name: a second key
    assert done.returncode == 0, done.stderr
    async with running_hub(url, tmp_path) as hub:
        assert await hub.fetchval("SELECT count(*) FROM council_keys") == 2
        assert await hub.fetchval("SELECT name FROM councils") == "East Sussex"
        async with hub.pool.acquire() as conn:
            entries = [json.loads(bytes(r["entry"])) for r in
                       await conn.fetch("SELECT entry FROM audit_log ORDER BY seq")]
        assert [e["action"] for e in entries] == ["council.enrol.refused"] * 3 + [
            "council.enrol", "council.enrol.refused", "council.enrol"]


async def test_enrolment_refuses_every_weak_key(hub: Hub) -> None:
    """All 8 small-order points, non-canonical encodings and a mixed-order point."""
    for name, raw in weak_keys():
        with pytest.raises(keys.WeakKeyError) as caught:
            await hub.enrol(ESX, pem_of(raw))
        assert caught.value.code is ErrorCode.WEAK_KEY, name
    assert await hub.fetchval("SELECT count(*) FROM council_keys") == 0


async def test_a_weak_key_enrolled_by_an_older_hub_verifies_nothing(hub: Hub) -> None:
    """A weak key slipped into the table (as before this check existed): a forged batch
    in a forged request, made with no private key, is refused and applies nothing."""
    async with hub.pool.acquire() as conn:
        await conn.execute("INSERT INTO councils (code, name) VALUES ($1, 'East Sussex')", ESX)
        await conn.execute("INSERT INTO council_keys (kid, council_code, public_key)"
                           " VALUES ($1, $2, $3)",
                           keys.key_id(NoPrivateKey().public_key()), ESX, IDENTITY)
    forger = cast(Ed25519PrivateKey, NoPrivateKey())  # it quacks like one: see NoPrivateKey
    attacker = Client(hub, ESX, forger)
    body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("ESX-666"), 1)], forger)
    status, answer, _ = await attacker.send(body)
    assert status == 400 and error_code(answer) == "weak_key", answer
    assert await hub.fetchval("SELECT count(*) FROM records") == 0


async def test_rotation_refuses_an_announced_weak_key_over_http(hub: Hub) -> None:
    """A council (or whoever holds its key) announces a small-order or mixed-order next
    key, 'signed' by it with the forged signature: 400 weak_key, no key enrolled, and
    the old key keeps its expiry."""
    old = keys.generate()
    await hub.enrol(ESX, keys.public_pem(old.public_key()))
    council = Client(hub, ESX, old)
    for raw in (IDENTITY, ed25519_points.torsion_points()[3],
                ed25519_points.add_torsion(keys.raw_public(keys.generate().public_key()))):
        weak = NoPrivateKey(raw)
        ann = KeyAnnouncement.of(ESX, old, weak,  # type: ignore[arg-type]
                                 issued_at=format_timestamp(datetime.now(UTC)))
        body = Envelope.sign(KEY_ANNOUNCEMENT_TYPE, encoding.pack(ann.to_wire()),
                             [old, weak]).encode()  # type: ignore[list-item]
        status, answer, _ = await council.send(body, tail="keys")
        assert status == 400 and error_code(answer) == "weak_key", answer
    assert await hub.fetchval("SELECT count(*) FROM council_keys") == 1
    assert await hub.fetchval("SELECT not_after FROM council_keys") is None


async def test_rotation_refuses_a_not_after_already_past(hub: Hub) -> None:
    old, new = keys.generate(), keys.generate()
    await hub.enrol(ESX, keys.public_pem(old.public_key()))
    ann = KeyAnnouncement.of(ESX, old, new, issued_at="2020-01-01T00:00:00Z",
                             not_after="2021-01-01T00:00:00Z")
    status, answer, _ = await Client(hub, ESX, old).send(ann.sign(old, new).encode(),
                                                         tail="keys")
    assert status == 400 and error_code(answer) == "invalid_field", answer
    assert await hub.fetchval("SELECT count(*) FROM council_keys") == 1


async def test_a_node_refuses_a_weak_hub_key_in_its_config(
        hub: Hub, make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A node whose ``hub.public_key_file`` holds a small-order key (someone swapped the
    file: receipts could then be forged) refuses to start publishing."""
    async with running_node(ESX, await make_database(), tmp_path, hub) as node:
        weak_file = tmp_path / "weak_hub.pub.pem"
        weak_file.write_bytes(pem_of(IDENTITY))
        config = dataclasses.replace(
            node.config, hub=dataclasses.replace(node.config.hub, public_key_file=weak_file))
        with pytest.raises(keys.WeakKeyError):
            async with open_publisher(config, node.pool):
                pass
