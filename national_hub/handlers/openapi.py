"""``GET /openapi.json``: the hub's API description (national_hub/openapi.py). Open to
anyone who can reach the hub: it describes endpoints, never data."""

from __future__ import annotations

from aiohttp import web

from national_hub import openapi


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


def routes() -> list[web.RouteDef]:
    return [web.get("/openapi.json", get_openapi)]
