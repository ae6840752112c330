"""The one HTTP client to the hub: builds URLs, signs requests, sends, decodes.

It never retries and keeps no state; retries, backoff and the outbox sit above
it in the publisher. Every failure comes out as a SignpostError: the hub's own
error (its code and ``retryable`` flag), ``tls_untrusted`` (not retryable: a human
must fix the CA or the hub's certificate) when the hub's HTTPS certificate does not
verify against ``hub.ca_file``, or ``unavailable`` (retryable) when the hub cannot
be reached or answers something that is not ours.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from local_node.config import HubSection
from local_node.keyfile import KeySource, as_key_source
from protocol import encoding, keys, request_auth
from protocol.anti_entropy import BucketRecords, BucketRecordsRequest, DigestRequest, DigestSummary
from protocol.errors import ErrorCode, SignpostError, UnavailableError, ValidationError
from protocol.notices import Notice, parse_page
from protocol.records import is_local_id
from server_common.tls import client_context

MSGPACK = "application/msgpack"


@dataclass(frozen=True, slots=True)
class HubCursor:
    """The hub's cursor, and what the hub said about the key that asked for it."""

    seq: int
    hash: str
    kid: str
    key_not_after: str | None  # RFC 3339, or None: the hub knows no expiry for the key


@contextlib.asynccontextmanager
async def connect(hub: HubSection, council: str,
                  key: Ed25519PrivateKey | KeySource) -> AsyncIterator[HubClient]:
    """A client on its own session, verifying the hub's certificate per ``[hub]``."""
    connector = aiohttp.TCPConnector(ssl=client_context(hub.ca_file))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield HubClient(hub.url, council, key, session, timeout=hub.timeout,
                        ca_file=hub.ca_file)


class HubClient:
    def __init__(self, base_url: str, council: str, key: Ed25519PrivateKey | KeySource,
                 session: aiohttp.ClientSession, *, timeout: float = 60.0,
                 ca_file: Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.council = council
        # Only named in errors: the session's connector holds the trust itself.
        self.trust = f"hub.ca_file {ca_file}" if ca_file else "the system's trusted CAs"
        # The key is looked up for every request: a key file replaced by
        # ``local-node keys rotate`` is used from the next request on.
        self.key = as_key_source(key)
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def _send(self, method: str, path: str, body: bytes = b"",
                    request_id: str | None = None,
                    key: Ed25519PrivateKey | None = None) -> bytes:
        headers = request_auth.sign_request(key or self.key(), method, path, body,
                                            self.council)
        headers["X-Request-Id"] = request_id or secrets.token_hex(8)
        if body:
            headers["Content-Type"] = MSGPACK
        try:
            async with self.session.request(method, self.base_url + path,
                                            # a stream: aiohttp warns on large raw bytes
                                            data=io.BytesIO(body),
                                            headers=headers, timeout=self.timeout) as resp:
                data = await resp.read()
                if resp.status >= 400:
                    raise self._error(resp.status, data)
                return data
        except aiohttp.ClientConnectorCertificateError as exc:
            # Retrying cannot help: the CA file or the hub's certificate must change.
            # Nothing was sent: the request never left the TLS handshake.
            reason = getattr(exc.certificate_error, "verify_message", None) or str(
                exc.certificate_error)
            raise SignpostError(
                f"the hub at {self.base_url} is not trusted: its TLS certificate does not "
                f"verify against {self.trust} ({reason}); check that hub.ca_file is the CA "
                f"that issued the hub's certificate and that hub.url names the host on it",
                code=ErrorCode.TLS_UNTRUSTED, status=502, retryable=False) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UnavailableError(f"hub unreachable: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _error(status: int, data: bytes) -> SignpostError:
        try:
            body = json.loads(data)["error"]
            if not isinstance(body, dict):
                raise TypeError("error is not an object")
        except (ValueError, KeyError, TypeError):
            # Not one of our error bodies (a proxy page, say): a server fault may pass.
            return SignpostError(f"hub answered HTTP {status} with no error body",
                                 code=ErrorCode.UNAVAILABLE, status=status,
                                 retryable=status >= 500)
        return SignpostError.from_dict(status, body)

    def _path(self, tail: str) -> str:
        return f"/v1/councils/{self.council}/{tail}"

    async def post_batch(self, envelope: bytes, request_id: str | None = None) -> bytes:
        """Send a signed batch envelope; return the hub's signed receipt envelope bytes."""
        return await self._send("POST", self._path("batches"), envelope, request_id)

    async def get_cursor(self) -> tuple[int, str]:
        cursor = await self.read_cursor()
        return cursor.seq, cursor.hash

    async def read_cursor(self, key: Ed25519PrivateKey | None = None) -> HubCursor:
        """The cursor, asked with ``key`` (default: the current key)."""
        key = key or self.key()
        obj = encoding.unpack(await self._send("GET", self._path("cursor"), key=key),
                              what="cursor")
        if not isinstance(obj, dict) or not isinstance(obj.get("seq"), int):
            raise UnavailableError("hub sent a malformed cursor")
        not_after = obj.get("key_not_after")
        return HubCursor(obj["seq"], str(obj["hash"]), keys.key_id(key.public_key()),
                         not_after if isinstance(not_after, str) else None)

    async def post_key_announcement(self, envelope: bytes,
                                    old_key: Ed25519PrivateKey) -> dict[str, Any]:
        """Announce a new key (the envelope is signed by old and new); the request is
        signed by the old key. Returns the hub's answer map."""
        obj = encoding.unpack(await self._send("POST", self._path("keys"), envelope,
                                               key=old_key), what="key announcement answer")
        if not isinstance(obj, dict) or not isinstance(obj.get("kid"), str):
            raise UnavailableError("hub sent a malformed answer to a key announcement")
        return obj

    async def post_heartbeat(self, head_seq: int, outbox_depth: int, sent_at: str) -> None:
        body: dict[str, Any] = {"head_seq": head_seq, "outbox_depth": outbox_depth,
                                "sent_at": sent_at}
        await self._send("POST", self._path("heartbeats"), encoding.pack(body))

    async def post_digests(self, bits: int) -> DigestSummary:
        """The hub's bucket digests of what it holds for this council (PROTOCOL §12.1)."""
        return DigestSummary.decode(await self._send(
            "POST", self._path("digests"), DigestRequest(bits).encode()))

    async def post_digest_records(self, bits: int, buckets: list[int]) -> BucketRecords:
        """Every row the hub holds for this council in these buckets."""
        return BucketRecords.decode(await self._send(
            "POST", self._path("digests/records"),
            BucketRecordsRequest(bits, tuple(buckets)).encode()))

    # --- witnessing the hub's audit log (docs/PROTOCOL.md §15) ----------------------

    async def get_audit_checkpoint(self, first: int) -> dict[str, Any]:
        """The hub's latest signed checkpoint and a consistency proof from ``first``."""
        obj = encoding.unpack(await self._send(
            "GET", self._path(f"audit/checkpoint?from={first}")), what="audit checkpoint")
        if not isinstance(obj, dict) or not isinstance(obj.get("note"), str):
            raise UnavailableError("hub sent a malformed audit checkpoint")
        return obj

    async def post_cosignature(self, tree_size: int, cosignature: str) -> None:
        await self._send("POST", self._path("audit/cosignatures"), encoding.pack(
            {"tree_size": tree_size, "cosignature": cosignature}))

    async def post_witness_refusal(self, reason: str, cosigned_size: int | None,
                                   offered_size: int | None) -> None:
        await self._send("POST", self._path("audit/refusals"), encoding.pack(
            {"reason": reason, "cosigned_size": cosigned_size, "offered_size": offered_size}))

    # --- the hub witnesses this node's own audit log (docs/PROTOCOL.md §18) ----------

    async def get_node_log(self) -> str | None:
        """The checkpoint of this node's own log the hub last kept; None: none yet."""
        try:
            obj = encoding.unpack(await self._send("GET", self._path("audit/node-log")),
                                  what="node log checkpoint")
        except SignpostError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise
        if not isinstance(obj, dict) or not isinstance(obj.get("note"), str):
            raise UnavailableError("hub sent a malformed node log checkpoint")
        return str(obj["note"])

    async def post_node_log(self, note: str, first: int,
                            proof: list[bytes] | None) -> dict[str, Any]:
        """Offer the node's latest checkpoint; the hub's judgement (``accepted``,
        ``reason``)."""
        obj = encoding.unpack(await self._send("POST", self._path("audit/node-log"),
                                               encoding.pack({"note": note, "first": first,
                                                              "proof": proof})),
                              what="node log judgement")
        if not isinstance(obj, dict) or not isinstance(obj.get("accepted"), bool):
            raise UnavailableError("hub sent a malformed node log judgement")
        return obj

    # --- children another council shields (docs/PROTOCOL.md §16) -------------------

    async def get_shielded(self, after: str) -> tuple[list[str], str | None]:
        """One page of this council's local ids the hub counts as shielded because of
        another council's record, and where the next page starts (None: the last)."""
        path = self._path("shielded") + (f"?{urlencode({'after': after})}" if after else "")
        obj = encoding.unpack(await self._send("GET", path), what="shielded local ids")
        local_ids = obj.get("local_ids") if isinstance(obj, dict) else None
        after_next = obj.get("next") if isinstance(obj, dict) else None
        if (not isinstance(local_ids, list) or not all(is_local_id(i) for i in local_ids)
                or not (after_next is None or is_local_id(after_next))):
            raise UnavailableError("hub sent a malformed list of shielded local ids")
        return local_ids, after_next

    async def get_notices(self, after: int) -> tuple[list[Notice], int, bool]:
        """This council's notices after the cursor ``after`` (docs/PROTOCOL.md §17): the
        notices, the next cursor and whether more wait."""
        path = self._path("notices") + f"?{urlencode({'after': after})}"
        obj = encoding.unpack(await self._send("GET", path), what="notices")
        try:
            return parse_page(obj)
        except ValidationError as exc:
            raise UnavailableError(f"hub sent a malformed page of notices: {exc}") from exc
