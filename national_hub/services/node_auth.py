"""Authenticating a council node's request (docs/design.md §4, request auth).

Checks, in order: the five headers are present; the origin is the council in the
path; the key is enrolled, belongs to that council, is neither revoked nor
expired; the timestamp is within ±300 s; the nonce was not used before. All of
these are settled from the headers, before the body is read (``check_headers``).
Then, over the body: the signature verifies over method, path, body hash, origin,
timestamp and nonce; and only then is the nonce remembered (so an unauthenticated
party cannot burn nonces), refusing a replay (``verify``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import asyncpg

from national_hub.storage.councils import CouncilKey, CouncilStore
from national_hub.storage.nonces import NonceStore
from protocol import keys, request_auth
from protocol.errors import AuthError, ErrorCode, SignpostError

# Handlers take CouncilKey from here (it is storage's), never from storage.


def _replayed() -> AuthError:
    return AuthError("request nonce was already used (replay)",
                     code=ErrorCode.AUTH_REPLAYED_NONCE)


def check_key_usable(key: CouncilKey, council: str, now: datetime) -> None:
    if key.council_code != council:
        raise AuthError(f"key {key.kid} is not enrolled for council {council}",
                        code=ErrorCode.KEY_WRONG_COUNCIL, status=403)
    if key.revoked_at is not None and key.revoked_at <= now:
        raise AuthError(f"key {key.kid} was revoked at {key.revoked_at.isoformat()}",
                        code=ErrorCode.KEY_REVOKED, status=403)
    if key.not_after is not None and key.not_after <= now:
        raise AuthError(f"key {key.kid} expired at {key.not_after.isoformat()}",
                        code=ErrorCode.KEY_EXPIRED, status=403)


class NodeAuthenticator:
    def __init__(self, pool: asyncpg.Pool, councils: CouncilStore, nonces: NonceStore) -> None:
        self.pool = pool
        self.councils = councils
        self.nonces = nonces

    async def authenticate(self, council: str, method: str, path: str, body: bytes,
                           headers: Mapping[str, str]) -> CouncilKey:
        signed, key = await self.check_headers(council, headers)
        await self.verify(signed, key, method, path, body)
        return key

    async def check_headers(self, council: str, headers: Mapping[str, str]
                            ) -> tuple[request_auth.SignedRequest, CouncilKey]:
        """Everything the headers alone settle, so a request that cannot succeed is
        refused before its body is read: the headers are well-formed, the origin is the
        council, the key is enrolled for it and usable, the timestamp is fresh and the
        nonce unused (it is remembered only by :meth:`verify`)."""
        signed = request_auth.parse_headers(headers)
        if signed.origin != council:
            raise AuthError(f"request from {signed.origin} for council {council}",
                            code=ErrorCode.AUTH_ORIGIN_MISMATCH, status=403)
        async with self.pool.acquire() as conn:
            if await self.councils.get(conn, council) is None:
                raise SignpostError(f"council {council} is not enrolled",
                                    code=ErrorCode.UNKNOWN_COUNCIL, status=404)
            key = await self.councils.get_key(conn, signed.kid)
            if key is None:
                raise AuthError(f"key {signed.kid} is not enrolled", code=ErrorCode.UNKNOWN_KEY)
            check_key_usable(key, council, datetime.now(UTC))
            signed.check_clock()
            if await self.nonces.seen(conn, signed.origin, signed.nonce):
                raise _replayed()
        return signed, key

    async def verify(self, signed: request_auth.SignedRequest, key: CouncilKey, method: str,
                     path: str, body: bytes) -> None:
        """The signature over the exact body, then the nonce remembered (refused if
        another request spent it meanwhile)."""
        if not signed.verify(keys.public_from_raw(key.public_key), method, path, body):
            raise AuthError("request signature does not verify",
                            code=ErrorCode.AUTH_BAD_SIGNATURE)
        async with self.pool.acquire() as conn:
            if not await self.nonces.remember(conn, signed.origin, signed.nonce):
                raise _replayed()

    async def purge_nonces(self, ttl: float) -> None:
        """Forget nonces older than ``ttl`` seconds: a request that old is refused for its
        timestamp before its nonce is looked at, so they can never replay."""
        async with self.pool.acquire() as conn:
            await self.nonces.purge_older_than(conn, ttl)
