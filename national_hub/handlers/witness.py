"""Endpoints a council's node calls to witness the hub's audit log (docs/PROTOCOL.md
§15, docs/audit.md "Witnesses"): msgpack bodies, requests signed and authenticated as
every other ``/v1/councils/{code}/…`` request."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from national_hub.handlers.federation import authenticated_key, msgpack_response
from national_hub.services.node_logs import NodeLogWitness
from national_hub.services.witnesses import MAX_REASON, Witnesses
from protocol import encoding
from protocol.errors import DecodeError, ErrorCode, ValidationError
from server_common.web import whole_number

WITNESSES = web.AppKey("witnesses", Witnesses)
NODE_LOGS = web.AppKey("node_logs", NodeLogWitness)
MAX_NOTE = 2000  # a checkpoint: origin, size, root, time and one or two signature lines
MAX_PROOF = 64   # hashes: a consistency proof of a log of 2**63 entries is shorter
MAX_COSIGNATURE = 200  # one signature line: name + base64 of 76 bytes


def _size(value: object, name: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValidationError(name, "must be a non-negative 64-bit integer")
    return value


def _map(body: bytes, what: str) -> dict[str, Any]:
    obj = encoding.unpack(body, what=what)
    if not isinstance(obj, dict):
        raise DecodeError(f"{what} must be a map", code=ErrorCode.MALFORMED_REQUEST)
    return obj


async def get_checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint and a consistency proof from ``?from=`` (the size of
    the last checkpoint this council cosigned; 0 for none)."""
    await authenticated_key(request)
    size = whole_number(request.query.get("from", "0"))
    if size is None:
        raise ValidationError("from", "a whole number ≥ 0 is required")
    offer = await request.app[WITNESSES].offer(size)
    return msgpack_response(offer.to_wire())


async def post_cosignature(request: web.Request) -> web.Response:
    code, body, key = await authenticated_key(request)
    obj = _map(body, "cosignature")
    tree_size = _size(obj.get("tree_size"), "tree_size")
    line = obj.get("cosignature")
    if not isinstance(line, str) or len(line) > MAX_COSIGNATURE:
        raise ValidationError("cosignature", "must be one signature line")
    assert tree_size is not None
    new = await request.app[WITNESSES].cosigned(code, key.public_key, key.kid, tree_size, line)
    return msgpack_response({"ok": True, "new": new})


async def post_refusal(request: web.Request) -> web.Response:
    code, body, _ = await authenticated_key(request)
    obj = _map(body, "refusal")
    reason = obj.get("reason")
    if (not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON
            or "\x00" in reason):  # PostgreSQL text holds no NUL
        raise ValidationError("reason", f"must be text of 1 to {MAX_REASON} characters "
                                        "without NUL")
    await request.app[WITNESSES].refused(
        code, reason, _size(obj.get("cosigned_size"), "cosigned_size", optional=True),
        _size(obj.get("offered_size"), "offered_size", optional=True))
    return msgpack_response({"ok": True})


async def get_node_log(request: web.Request) -> web.Response:
    """The checkpoint of this council's node log the hub last kept (§18)."""
    code, _, _ = await authenticated_key(request)
    held = await request.app[NODE_LOGS].held(code)
    return msgpack_response({"note": held.note})


async def post_node_log(request: web.Request) -> web.Response:
    """The node's latest checkpoint of its own log, with a consistency proof from the
    one the hub kept: kept, or refused as evidence (200 either way; the answer says)."""
    code, body, _ = await authenticated_key(request)
    obj = _map(body, "node log checkpoint")
    note = obj.get("note")
    if not isinstance(note, str) or not 0 < len(note) <= MAX_NOTE or "\x00" in note:
        raise ValidationError("note", f"must be a signed checkpoint of at most {MAX_NOTE} "
                                      "characters")
    _size(obj.get("first"), "first")
    proof = obj.get("proof")
    if proof is not None and not (
            isinstance(proof, list) and len(proof) <= MAX_PROOF
            and all(isinstance(h, bytes) and len(h) == 32 for h in proof)):
        raise ValidationError("proof", f"must be nil or a list of at most {MAX_PROOF} "
                                       "32-byte hashes")
    judged = await request.app[NODE_LOGS].offered(code, obj)
    return msgpack_response(judged.to_wire())


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/councils/{code}/audit/checkpoint", get_checkpoint),
        web.post("/v1/councils/{code}/audit/cosignatures", post_cosignature),
        web.post("/v1/councils/{code}/audit/refusals", post_refusal),
        web.get("/v1/councils/{code}/audit/node-log", get_node_log),
        web.post("/v1/councils/{code}/audit/node-log", post_node_log),
    ]
