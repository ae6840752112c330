"""Write ``tests/protocol/vectors.json``: byte-exact examples of every signed message.

Run from the repository root::

    .venv/bin/python tests/protocol/make_vectors.py

The output is deterministic: keys come from fixed 32-byte seeds, Ed25519
signatures are deterministic, and every timestamp and nonce is fixed. Running
the script again must leave the file unchanged (``test_vectors.py`` checks the
file against the protocol code, byte for byte). Bytes are lower-case hex.
docs/PROTOCOL.md §13 explains each vector.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import ed25519_points, encoding, keys, request_auth
from protocol.batch import GENESIS, Batch, DeleteOp, OpResult, Receipt, UpsertOp, batch_hash
from protocol.key_announcement import KeyAnnouncement
from protocol.notices import LeadContact, Notice, NoticeEvent
from protocol.records import ChildRecord, Involvement
from protocol.signing import BATCH_TYPE, RECEIPT_TYPE, Envelope, pae

OUT = Path(__file__).with_name("vectors.json")

COUNCIL = "E10000011"
COUNCIL_SEED = bytes(range(32))  # 000102…1f
HUB_SEED = bytes(range(32, 64))  # 202122…3f
COUNCIL_NEXT_SEED = bytes(range(64, 96))  # 404142…5f: the council's next key (rotation)
ISSUED_AT_1 = "2026-11-25T10:00:00Z"
ISSUED_AT_2 = "2026-11-25T10:05:00Z"
APPLIED_AT = "2026-11-25T10:00:01.250000Z"
REQUEST_TIMESTAMP = 1795600800  # 2026-11-25T10:00:00Z
REQUEST_NONCE = "00112233445566778899aabbccddeeff"
CURSOR_NONCE = "ffeeddccbbaa99887766554433221100"
ANNOUNCED_AT = "2026-11-25T11:00:00Z"
NEXT_NOT_AFTER = "2027-11-25T00:00:00Z"
ANNOUNCEMENT_NONCE = "0123456789abcdef0123456789abcdef"
NOTICES_NONCE = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
OLD_NOT_AFTER = "2026-12-02T11:00:00Z"  # ANNOUNCED_AT + the default 7-day overlap


def record_one() -> ChildRecord:
    return ChildRecord(
        local_id="ESX-000001",
        given_name="Amelia",
        family_name="Okafor",
        dob=date(2015, 3, 14),
        sex=2,
        other_given_names="Grace",
        former_family_names=("Smith",),
        address_line="12 Church Road, Lewes",
        postcode="BN7 2AA",
        nhs_number="9434765919",
        upn="V801200115001",
        parent_carer_name="Ngozi Okafor",
        parent_carer_phone="01273 000000",
        involvements=(
            Involvement(service_type="school", organisation_code="114580",
                        organisation_name="Priory School", start_date=date(2019, 9, 4)),
            Involvement(service_type="mental_health", organisation_name="CAMHS East Sussex",
                        professional_name="Dr R. Patel", professional_role="Clinician",
                        professional_email="r.patel@example.nhs.uk", lead_professional=True,
                        sensitive=True, consent=True),
        ),
    )


def record_incomplete() -> ChildRecord:
    """A record whose feed row had no given name and an impossible date of birth:
    published with both absent (docs/PROTOCOL.md §3.2.1), found and linked by what it has."""
    return ChildRecord(local_id="ESX-000003", family_name="Okafor", sex=2,
                       postcode="BN7 2AA", nhs_number="9434765919")


def incomplete_vector() -> dict[str, Any]:
    record = record_incomplete()
    wire = record.to_wire()
    data = encoding.pack(wire)
    # The same record with the absent fields sent as nil: other bytes, the same record.
    nil_form = encoding.pack({**wire, "given_name": None, "dob": None})
    assert ChildRecord.from_wire(encoding.unpack(nil_form)) == record
    return {
        "wire": wire,
        "msgpack_hex": data.hex(),
        "digest": encoding.sha256_hex(data),
        "nil_form_msgpack_hex": nil_form.hex(),
        # no name, no date of birth, no NHS number, no UPN: refused, naming "record"
        "refused_wire": {"local_id": "ESX-000004", "sex": 1, "postcode": "BN7 2AA"},
        "refused_field": "record",
    }


def notice_one() -> Notice:
    """A notice to East Sussex: West Sussex became involved with its child (§17)."""
    return Notice(id=7, seq=12, national_id="N000000000042", day="2026-11-25",
                  local_ids=("ESX-000001",), shielded=False, events=(
                      NoticeEvent(kind="linked", council="E10000032",
                                  council_name="West Sussex", services=("school",),
                                  lead=LeadContact(role="Designated safeguarding lead",
                                                   phone="01903 000000",
                                                   email="dsl@school.wsx.sch.uk")),
                      NoticeEvent(kind="new_involvement", council="E10000032",
                                  council_name="West Sussex", services=("gp",))))


def record_two() -> ChildRecord:
    return ChildRecord(local_id="ESX-000002", given_name="Tom", family_name="Hale",
                       dob=date(2019, 11, 2), sex=1)


def key_vector(key: Ed25519PrivateKey, seed: bytes) -> dict[str, Any]:
    public = key.public_key()
    return {
        "seed_hex": seed.hex(),
        "public_raw_hex": keys.raw_public(public).hex(),
        "public_pem": keys.public_pem(public).decode("ascii"),
        "kid": keys.key_id(public),
    }


def envelope_vector(env: Envelope) -> dict[str, Any]:
    encoded = env.encode()
    return {
        "payload_type": env.payload_type,
        "pae_hex": pae(env.payload_type, env.payload).hex(),
        "signatures": [{"kid": s.kid, "sig_hex": s.sig.hex()} for s in env.signatures],
        "envelope_hex": encoded.hex(),
        "envelope_sha256": encoding.sha256_hex(encoded),
    }


def batch_vector(batch: Batch, key: Ed25519PrivateKey) -> dict[str, Any]:
    payload = batch.encode()
    ops: list[dict[str, Any]] = []
    for op in batch.ops:
        if isinstance(op, UpsertOp):
            ops.append({"op": "upsert", "local_id": op.local_id, "version": op.version,
                        "record_hex": op.record.hex(), "record_digest": op.digest})
        elif isinstance(op, DeleteOp):
            ops.append({"op": "delete", "local_id": op.local_id, "version": op.version})
    return {
        "council": batch.council,
        "seq": batch.seq,
        "prev": batch.prev,
        "issued_at": batch.issued_at,
        "ops": ops,
        "payload_hex": payload.hex(),
        "hash": batch_hash(payload),
        "envelope": envelope_vector(Envelope.sign(BATCH_TYPE, payload, [key])),
    }


def request_vector(key: Ed25519PrivateKey, method: str, path: str, body: bytes, nonce: str,
                   *, body_is: str) -> dict[str, Any]:
    canonical = request_auth.canonical(method, path, body, COUNCIL, REQUEST_TIMESTAMP, nonce)
    headers = request_auth.sign_request(key, method, path, body, COUNCIL,
                                        now=REQUEST_TIMESTAMP, nonce=nonce)
    return {
        "method": method,
        "path": path,
        "body_is": body_is,
        "body_sha256": encoding.sha256_hex(body),
        "origin": COUNCIL,
        "timestamp": REQUEST_TIMESTAMP,
        "nonce": nonce,
        "canonical": canonical.decode("utf-8"),
        "pae_hex": pae(request_auth.REQUEST_TYPE, canonical).hex(),
        "headers": headers,
    }


def public_key_checks(good: Ed25519PrivateKey) -> list[dict[str, Any]]:
    """Raw public keys a verifier must refuse (§5), with why, and one it must accept."""
    good_raw = keys.raw_public(good.public_key())
    out: list[dict[str, Any]] = [{"name": "good (keys.council)", "raw_hex": good_raw.hex(),
                                  "accept": True, "reason": None}]
    for i, raw in enumerate(ed25519_points.torsion_points()):
        out.append({"name": f"small-order point {i} of 8", "raw_hex": raw.hex(),
                    "accept": False, "reason": "small-order point"})
    p = ed25519_points.P
    for name, value in (("y = p (non-canonical zero)", p), ("y = p + 1 (non-canonical one)", p + 1),
                        ("x = -0: the identity with the sign bit set", 1 | 1 << 255),
                        ("y = 2: not on the curve", 2)):
        out.append({"name": name, "raw_hex": value.to_bytes(32, "little").hex(),
                    "accept": False, "reason": "non-canonical encoding"})
    out.append({"name": "mixed-order: keys.council plus a point of order 8",
                "raw_hex": ed25519_points.add_torsion(good_raw, 1).hex(),
                "accept": False, "reason": "mixed-order point"})
    return out


def build() -> dict[str, Any]:
    council_key = Ed25519PrivateKey.from_private_bytes(COUNCIL_SEED)
    hub_key = Ed25519PrivateKey.from_private_bytes(HUB_SEED)

    rec1, rec2 = record_one(), record_two()
    rec1_wire = rec1.to_wire()
    rec1_bytes = encoding.pack(rec1_wire)

    batch1 = Batch(COUNCIL, 1, GENESIS, ISSUED_AT_1, (
        UpsertOp.of(rec1, 1),
        UpsertOp.of(rec2, 1),
        DeleteOp("ESX-000009", 3),
    ))
    payload1 = batch1.encode()
    rec1_v2 = dataclasses.replace(rec1, address_line="3 Mill Lane, Lewes", postcode="BN7 1BB")
    batch2 = Batch(COUNCIL, 2, batch_hash(payload1), ISSUED_AT_2, (UpsertOp.of(rec1_v2, 2),))
    batch1_env = Envelope.sign(BATCH_TYPE, payload1, [council_key]).encode()

    receipt = Receipt(COUNCIL, 1, batch_hash(payload1), APPLIED_AT, (
        OpResult("ESX-000001", "applied"),
        OpResult("ESX-000002", "applied"),
        OpResult("ESX-000009", "stale", "stale_version", "the hub holds version 3"),
    ))
    receipt_payload = receipt.encode()

    next_key = Ed25519PrivateKey.from_private_bytes(COUNCIL_NEXT_SEED)
    announcement = KeyAnnouncement.of(COUNCIL, council_key, next_key, issued_at=ANNOUNCED_AT,
                                      not_after=NEXT_NOT_AFTER)
    announcement_payload = announcement.encode()
    announcement_env = announcement.sign(council_key, next_key)
    announcement_answer = {"council": COUNCIL, "kid": announcement.new_kid,
                           "not_after": NEXT_NOT_AFTER, "old_kid": announcement.old_kid,
                           "old_not_after": OLD_NOT_AFTER}

    heartbeat = {"head_seq": 2, "outbox_depth": 0, "sent_at": "2026-11-25T10:05:01Z"}
    cursor = {"council": COUNCIL, "seq": 1, "hash": batch_hash(payload1)}

    notices_page = {"notices": [notice_one().to_wire()], "next": 12, "more": False}

    return {
        "about": "Signpost protocol test vectors; see docs/PROTOCOL.md §11. "
                 "Generated by tests/protocol/make_vectors.py. Bytes are lower-case hex.",
        "genesis": GENESIS,
        "keys": {
            "council": {"council": COUNCIL, **key_vector(council_key, COUNCIL_SEED)},
            "hub": key_vector(hub_key, HUB_SEED),
            "council_next": {"council": COUNCIL, **key_vector(next_key, COUNCIL_NEXT_SEED)},
        },
        "public_key_checks": public_key_checks(council_key),
        "record": {
            "wire": rec1_wire,
            "msgpack_hex": rec1_bytes.hex(),
            "digest": encoding.sha256_hex(rec1_bytes),
        },
        "record_incomplete": incomplete_vector(),
        "pae_example": {
            "payload_type": "application/vnd.signpost.test",
            "payload_hex": b"hello".hex(),
            "pae_hex": pae("application/vnd.signpost.test", b"hello").hex(),
        },
        "batch_1": batch_vector(batch1, council_key),
        "batch_2": batch_vector(batch2, council_key),
        "receipt": {
            "council": receipt.council,
            "seq": receipt.seq,
            "batch_hash": receipt.batch_hash,
            "applied_at": receipt.applied_at,
            "results": [r.to_wire() for r in receipt.results],
            "payload_hex": receipt_payload.hex(),
            "envelope": envelope_vector(Envelope.sign(RECEIPT_TYPE, receipt_payload, [hub_key])),
        },
        "request_post_batch": request_vector(
            council_key, "POST", f"/v1/councils/{COUNCIL}/batches", batch1_env, REQUEST_NONCE,
            body_is="batch_1.envelope.envelope_hex"),
        "request_get_cursor": request_vector(
            council_key, "GET", f"/v1/councils/{COUNCIL}/cursor", b"", CURSOR_NONCE,
            body_is="empty"),
        "key_announcement": {
            "council": announcement.council,
            "new_kid": announcement.new_kid,
            "new_public_key_hex": announcement.new_public_key.hex(),
            "old_kid": announcement.old_kid,
            "issued_at": announcement.issued_at,
            "not_after": announcement.not_after,
            "payload_hex": announcement_payload.hex(),
            "envelope": envelope_vector(announcement_env),
        },
        "request_post_key_announcement": request_vector(
            council_key, "POST", f"/v1/councils/{COUNCIL}/keys", announcement_env.encode(),
            ANNOUNCEMENT_NONCE, body_is="key_announcement.envelope.envelope_hex"),
        "http_bodies": {
            "heartbeat": {"map": heartbeat, "msgpack_hex": encoding.pack(heartbeat).hex()},
            "cursor_response": {"map": cursor, "msgpack_hex": encoding.pack(cursor).hex()},
            "cursor_response_key_expiring": {
                "map": cursor | {"key_not_after": OLD_NOT_AFTER},
                "msgpack_hex": encoding.pack(cursor | {"key_not_after": OLD_NOT_AFTER}).hex()},
            "key_announcement_response": {
                "map": announcement_answer,
                "msgpack_hex": encoding.pack(announcement_answer).hex()},
            "notices_page": {"map": notices_page,
                             "msgpack_hex": encoding.pack(notices_page).hex()},
        },
        "request_get_notices": request_vector(
            council_key, "GET", f"/v1/councils/{COUNCIL}/notices?after=11", b"",
            NOTICES_NONCE, body_is="empty"),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
