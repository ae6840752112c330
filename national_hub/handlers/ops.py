"""The operators' page, ``/ops``: federation health at a glance.

The first view is rendered here from a health snapshot (so it shows something even
without JavaScript); ``ops.js`` then re-reads ``/v1/federation/health`` every 5 s and
redraws it, and charts ``/v1/federation/history``. Everything is served by the hub
itself: the page loads nothing from elsewhere.

Operators only: without a session the page sends the browser to ``/login``. The page
has no inline script or style (the hub's CSP allows neither): ``ops.js`` and
``ops.css`` are served behind the same login.
"""

from __future__ import annotations

import functools
import html
import math
from datetime import datetime
from pathlib import Path
from string import Template

from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.services.health import CouncilHealth
from server_common.accounts import Role, require_roles
from server_common.web import html_response

WEB = Path(__file__).resolve().parent.parent / "web"
STATUS_RANK = {"GOOD": 0, "WARN": 1, "BAD": 2}


@functools.cache
def _template() -> Template:
    return Template((WEB / "ops.html").read_text(encoding="utf-8"))


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


def _expiry(days: float | None) -> str:
    if days is None:
        return "never"
    if days < 0:
        return "expired"
    return "< 1 d" if days < 1 else f"{math.floor(days)} d"


def _dash(value: object) -> str:
    return "—" if value is None else str(value)


def _row(c: CouncilHealth, now: datetime) -> str:
    e = html.escape
    status = e(c.status)
    reasons = "".join(f"<li>{e(r)}</li>" for r in c.reasons)
    last = ("never" if c.last_batch_at is None
            else _age(max(0.0, (now - c.last_batch_at).total_seconds())))
    cells = [
        f'<td class="code">{e(c.code)}</td>',
        f'<td class="name">{e(c.name)}</td>',
        f'<td class="status"><span class="badge {status.lower()}">{status}</span></td>',
        f'<td class="reasons">{f"<ul>{reasons}</ul>" if reasons else ""}</td>',
        f'<td class="num lag">{_dash(c.lag)}</td>',
        f'<td class="num outbox">{_dash(c.outbox_depth)}</td>',
        f'<td class="num heartbeat">{_age(c.seconds_since_heartbeat)}</td>',
        f'<td class="num last-batch">{last}</td>',
        f'<td class="num records">{_dash(c.records)}</td>',
        f'<td class="num key-expiry">{_expiry(c.key_expiry_days)}</td>',
    ]
    return (f'    <tr class="status-{status.lower()}" data-council="{e(c.code)}">'
            + "".join(cells) + "</tr>")


@require_roles(Role.OPERATOR)
async def ops_page(request: web.Request) -> web.Response:
    health = await request.app[k.HEALTH].snapshot()
    councils = sorted(health.councils, key=lambda c: (-STATUS_RANK.get(c.status, 3), c.code))
    counts = {s: sum(c.status == s for c in councils) for s in STATUS_RANK}
    page = _template().substitute(
        status=html.escape(health.status),
        status_class=html.escape(health.status.lower()),
        summary=(f"{len(councils)} councils: {counts['GOOD']} good, {counts['WARN']} warn, "
                 f"{counts['BAD']} bad"),
        generated_at=health.generated_at.isoformat(),
        generated_at_text=health.generated_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
        rows="\n".join(_row(c, health.generated_at) for c in councils),
    )
    return html_response(page)  # no-store, CSP, no framing: server_common.headers


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
