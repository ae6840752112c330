"""Anti-entropy endpoints a council node calls (msgpack, signed like every node request)."""

from __future__ import annotations

from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.handlers.federation import MSGPACK, authenticated
from server_common.ratelimit.web import count_node_digests, count_node_drilldowns


async def post_digests(request: web.Request) -> web.Response:
    code, body = await authenticated(request)
    await count_node_digests(request, code)  # each summary is a pass over every record
    summary = await request.app[k.ANTI_ENTROPY].summary(code, body)
    return web.Response(body=summary.encode(), content_type=MSGPACK)


async def post_digest_records(request: web.Request) -> web.Response:
    code, body = await authenticated(request)
    await count_node_drilldowns(request, code)  # each is a pass over the council's records
    records = await request.app[k.ANTI_ENTROPY].records(code, body)
    return web.Response(body=records.encode(), content_type=MSGPACK)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/councils/{code}/digests", post_digests),
        web.post("/v1/councils/{code}/digests/records", post_digest_records),
    ]
