"""``GET /v1/councils/{code}/shielded?after=``: the council's children another council
shields (msgpack, signed like every node request; docs/PROTOCOL.md §16)."""

from __future__ import annotations

from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.handlers.federation import authenticated, msgpack_response


async def get_shielded(request: web.Request) -> web.Response:
    code, _ = await authenticated(request)
    local_ids, after = await request.app[k.SHIELDED_ELSEWHERE].page(
        code, request.query.get("after", ""))
    return msgpack_response({"local_ids": local_ids, "next": after})


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/councils/{code}/shielded", get_shielded)]
