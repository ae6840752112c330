"""Building and sending signed batches by hand, so tests can also send wrong ones."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import request_auth
from protocol.batch import Batch, Op, batch_hash
from protocol.records import ChildRecord, Involvement
from protocol.signing import BATCH_TYPE, Envelope
from tests.hub_harness import Hub


def record(local_id: str, nhs: str | None = "9434765919", **extra: Any) -> ChildRecord:
    return ChildRecord(local_id=local_id, given_name="Amelia", family_name="Okafor",
                       dob=date(2015, 3, 14), sex=2, nhs_number=nhs, postcode="BN1 1AA",
                       involvements=(Involvement(service_type="school",
                                                 organisation_code="114580"),), **extra)


def batch_bytes(council: str, seq: int, prev: str, ops: Sequence[Op],
                key: Ed25519PrivateKey) -> tuple[bytes, str]:
    payload = Batch(council, seq, prev, "2026-11-25T10:00:00Z", tuple(ops)).encode()
    return Envelope.sign(BATCH_TYPE, payload, [key]).encode(), batch_hash(payload)


class Client:
    """Sends raw, signed node requests, so tests can also send wrong ones."""

    def __init__(self, hub: Hub, council: str, key: Ed25519PrivateKey) -> None:
        self.hub, self.council, self.key = hub, council, key

    async def send(self, body: bytes, *, council: str | None = None,
                   key: Ed25519PrivateKey | None = None,
                   method: str = "POST", tail: str = "batches", now: float | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
        code = council or self.council
        path = f"/v1/councils/{code}/{tail}"
        hdrs = headers or request_auth.sign_request(key or self.key, method, path, body,
                                                    code, now=now)
        async with aiohttp.ClientSession() as session, session.request(
                method, self.hub.url + path, data=io.BytesIO(body), headers=hdrs) as resp:
            return resp.status, await resp.read(), hdrs


def error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


async def key_tables_disagree(conn: Any) -> list[tuple[str, str]]:
    """Records whose row of record_key_sets does not list exactly their record_keys rows
    (none, if the two tables agree as storage/key_sets.py promises)."""
    rows = await conn.fetch(
        """
        WITH by_row AS (SELECT council_code, local_id, array_agg(key ORDER BY key) AS keys
                        FROM record_keys GROUP BY council_code, local_id),
             by_set AS (SELECT council_code, local_id,
                               ARRAY(SELECT k FROM unnest(keys) k ORDER BY k) AS keys
                        FROM record_key_sets)
        SELECT council_code, local_id FROM by_row FULL JOIN by_set USING (council_code, local_id)
        WHERE by_row.keys IS DISTINCT FROM by_set.keys
        """)
    return [(r["council_code"], r["local_id"]) for r in rows]
