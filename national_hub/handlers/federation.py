"""Endpoints a council node calls (msgpack bodies, signed requests).

These are the hub's node-signed routes (server_common.access): no user signs in to
them, so every handler authenticates the request's signature first, through
:func:`authenticated` or :func:`authenticated_key`, the one place that does it. That
reads the body capped at ``hub.max_node_body_bytes`` (413 before any hashing or
verification), verifies, tells the access middleware the request is verified, and
counts it against the council's rate limit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.services.node_auth import CouncilKey
from protocol import encoding
from protocol.batch import check_council_code
from protocol.errors import DecodeError, ErrorCode, ValidationError
from protocol.key_announcement import format_timestamp
from server_common.access import mark_node_verified
from server_common.ratelimit import count_node
from server_common.web import body_deadline, check_declared_length, read_body

MSGPACK = "application/msgpack"


def msgpack_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=encoding.pack(obj), status=status, content_type=MSGPACK)


async def authenticated_key(request: web.Request) -> tuple[str, bytes, CouncilKey]:
    """The one place node requests are authenticated: (council code, body, signing key)."""
    code = check_council_code(request.match_info["code"], "path council code")
    hub = request.app[k.CONFIG].hub
    check_declared_length(request, hub.max_node_body_bytes)
    auth = request.app[k.NODE_AUTH]
    # What the headers settle is checked before a byte of the body is read: a forged,
    # stale or replayed request is not waited for, nor held.
    signed, key = await auth.check_headers(code, request.headers)
    async with body_deadline(hub.node_body_timeout):
        body = await read_body(request, hub.max_node_body_bytes)
    await auth.verify(signed, key, request.method, request.path_qs, body)
    mark_node_verified(request, code)
    await count_node(request, code)
    return code, body, key


async def authenticated(request: web.Request) -> tuple[str, bytes]:
    code, body, _ = await authenticated_key(request)
    return code, body


async def post_batch(request: web.Request) -> web.Response:
    code, body = await authenticated(request)
    result = await request.app[k.INTAKE].receive(code, body)
    response = web.Response(body=result.receipt_envelope, content_type=MSGPACK)
    response.headers["Signpost-Replayed"] = "true" if result.replayed else "false"
    return response


async def get_cursor(request: web.Request) -> web.Response:
    code, _, key = await authenticated_key(request)
    council = await request.app[k.COUNCILS].get(code)
    body: dict[str, Any] = {"council": code, "seq": council.cursor_seq,
                            "hash": council.cursor_hash}
    if key.not_after is not None:  # so the node can show when its key stops working
        body["key_not_after"] = format_timestamp(key.not_after)
    return msgpack_response(body)


async def post_key_announcement(request: web.Request) -> web.Response:
    """A council enrols its next key; the request is signed by the key it retires."""
    code, body, key = await authenticated_key(request)
    result = await request.app[k.ROTATION].announce(code, key, body)
    response = msgpack_response(result.to_wire())
    response.headers["Signpost-Replayed"] = "true" if result.replayed else "false"
    return response


def _counter(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValidationError(name, "must be a non-negative 64-bit integer")
    return value


async def post_heartbeat(request: web.Request) -> web.Response:
    code, body = await authenticated(request)
    obj = encoding.unpack(body, what="heartbeat")
    if not isinstance(obj, dict):
        raise DecodeError("heartbeat must be a map", code=ErrorCode.MALFORMED_REQUEST)
    head_seq = _counter(obj, "head_seq")
    depth = _counter(obj, "outbox_depth")
    sent_at = obj.get("sent_at")
    when = None
    if sent_at is not None:
        try:
            when = datetime.fromisoformat(str(sent_at).replace("Z", "+00:00"))
            if when.tzinfo is not None:  # its UTC instant may leave the calendar
                when = when.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise ValidationError("sent_at", "must be an ISO 8601 timestamp") from exc
    await request.app[k.COUNCILS].heartbeat(code, head_seq, depth, when)
    return msgpack_response({"ok": True})


async def get_hub_key(request: web.Request) -> web.Response:
    """The hub's receipt-signing public key (a node pins it from configuration)."""
    from protocol import keys as protocol_keys

    public = request.app[k.HUB_KEY].public_key()
    return web.json_response({
        "kid": protocol_keys.key_id(public),
        "public_key_pem": protocol_keys.public_pem(public).decode("ascii"),
    })


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/councils/{code}/batches", post_batch),
        web.get("/v1/councils/{code}/cursor", get_cursor),
        web.post("/v1/councils/{code}/keys", post_key_announcement),
        web.post("/v1/councils/{code}/heartbeats", post_heartbeat),
        web.get("/v1/hub/key", get_hub_key),
    ]


