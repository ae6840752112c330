"""The operators' page, ``/ops``: federation health at a glance.

The first view is rendered here from a health snapshot (``templates/ops.html``, so it
shows something even without JavaScript); ``ops.js`` then re-reads
``/v1/federation/health`` every 5 s and redraws it, and charts
``/v1/federation/history`` as one small chart per council. Everything is served by
the hub itself: the page loads nothing from elsewhere.

Operators only: without a session the page sends the browser to ``/login``. The page
has no inline script or style (the hub's CSP allows neither): ``ops.js`` and
``ops.css`` are served behind the same login.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.services.health import CouncilHealth
from server_common import pages
from server_common.accounts import Role, require_roles

WEB = Path(__file__).resolve().parent.parent / "web"
STATUS_RANK = {"GOOD": 0, "WARN": 1, "BAD": 2}


# The same formats as ops.js, which takes over after the first refresh.
def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{round(seconds)} s ago"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} d ago"


def when(at: datetime) -> str:
    """``5 Dec 2026, 14:05:09 UTC``: ops.js's ``when`` says it the same way after each
    refresh, so the time never changes format under the reader's eyes.

        >>> from datetime import UTC
        >>> when(datetime(2026, 12, 5, 14, 5, 9, 123456, tzinfo=UTC))
        '5 Dec 2026, 14:05:09 UTC'
    """
    at = at.astimezone(UTC)
    return f"{at.day} {at:%b %Y, %H:%M:%S} UTC"


def _expiry(days: float | None) -> str:
    if days is None:
        return "never"
    if days < 0:
        return "expired"
    return "< 1 d" if days < 1 else f"{math.floor(days)} d"


def _dash(value: object) -> str:
    return "—" if value is None else str(value)


def notices_waiting(undelivered: int, wait_seconds: float | None) -> str:
    """Notices the council's node has not fetched yet, as ops.js says it too.

        >>> notices_waiting(0, None), notices_waiting(3, 301.0)
        ('0', '3 (oldest 5 min ago)')
    """
    if not undelivered:
        return "0"
    return f"{undelivered} (oldest {_age(wait_seconds)})"


COLUMNS = (("code", "Code", False), ("name", "Council", False), ("status", "Status", False),
           ("reasons", "Reasons", False), ("lag", "Lag", True), ("outbox_depth", "Outbox", True),
           ("notices_undelivered", "Notices waiting", True),
           ("seconds_since_heartbeat", "Heartbeat", True), ("last_batch_at", "Last batch", True),
           ("records", "Records", True), ("key_expiry_days", "Key expiry", True))


def _row(c: CouncilHealth, now: datetime) -> dict[str, object]:
    return {"code": c.code, "name": c.name, "status": c.status, "reasons": c.reasons,
            "lag": _dash(c.lag), "outbox": _dash(c.outbox_depth),
            "notices": notices_waiting(c.notices_undelivered, c.notices_wait_seconds),
            "heartbeat": _age(c.seconds_since_heartbeat),
            "last_batch": ("never" if c.last_batch_at is None
                           else _age(max(0.0, (now - c.last_batch_at).total_seconds()))),
            "records": _dash(c.records), "key_expiry": _expiry(c.key_expiry_days)}


@require_roles(Role.OPERATOR)
async def ops_page(request: web.Request) -> web.Response:
    health = await request.app[k.HEALTH].snapshot()
    councils = sorted(health.councils, key=lambda c: (-STATUS_RANK.get(c.status, 3), c.code))
    counts = {s: sum(c.status == s for c in councils) for s in STATUS_RANK}
    return pages.render(request, "ops.html", {  # no-store, CSP: server_common.headers
        "title": "Federation health", "status": health.status,
        "summary": (f"{len(councils)} councils: {counts['GOOD']} good, {counts['WARN']} warn,"
                    f" {counts['BAD']} bad"),
        "generated_at": health.generated_at.isoformat(),
        "generated_at_text": when(health.generated_at), "columns": COLUMNS,
        "councils": [_row(c, health.generated_at) for c in councils]})


@functools.cache
def _read(name: str) -> bytes:
    return (WEB / name).read_bytes()


def _asset(name: str, content_type: str) -> web.RouteDef:
    @require_roles(Role.OPERATOR)
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=_read(name), content_type=content_type)

    return web.get(f"/ops/{name}", serve)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/ops", ops_page),
        _asset("ops.js", "text/javascript"),
        _asset("ops.css", "text/css"),
    ]
