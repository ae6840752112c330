"""Federation health as JSON, for operators and the /ops page (docs/design.md §7).

Operators only (a session or an operator's bearer token). They show no child's data,
only councils' sync state.
"""

from __future__ import annotations

import math

from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.services.health import HISTORY_BUCKET_SECONDS, MAX_HISTORY_HOURS
from protocol.errors import ValidationError
from server_common.accounts import Role, require_roles


@require_roles(Role.OPERATOR)
async def get_health(request: web.Request) -> web.Response:
    snapshot = await request.app[k.HEALTH].snapshot()
    return web.json_response(snapshot.to_dict())


def _hours(raw: str) -> float:
    try:
        hours = float(raw)
    except ValueError:
        hours = math.nan
    if not (math.isfinite(hours) and 0 < hours <= MAX_HISTORY_HOURS):
        raise ValidationError("hours", f"must be a number of hours above 0 and at most "
                                       f"{MAX_HISTORY_HOURS:g}, not {raw[:40]!r}")
    return hours


@require_roles(Role.OPERATOR)
async def get_history(request: web.Request) -> web.Response:
    hours = _hours(request.query.get("hours", "6"))
    series = await request.app[k.HEALTH].history(hours)
    return web.json_response({"hours": hours, "bucket_seconds": HISTORY_BUCKET_SECONDS,
                              "councils": series})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/federation/health", get_health),
        web.get("/v1/federation/history", get_history),
    ]
