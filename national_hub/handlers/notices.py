"""``GET /v1/councils/{code}/notices?after=N``: the council's notices after its cursor
(msgpack, signed like every node request; docs/PROTOCOL.md §17)."""

from __future__ import annotations

from aiohttp import web

from national_hub.handlers.federation import authenticated, msgpack_response
from national_hub.services.notices import NoticeFeed
from protocol.notices import parse_after

NOTICE_FEED = web.AppKey("notice_feed", NoticeFeed)


async def get_notices(request: web.Request) -> web.Response:
    code, _ = await authenticated(request)
    after = parse_after(request.query.get("after", ""))
    notices, nxt, more = await request.app[NOTICE_FEED].page(code, after)
    return msgpack_response({"notices": [n.to_wire() for n in notices], "next": nxt,
                             "more": more})


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/councils/{code}/notices", get_notices)]
