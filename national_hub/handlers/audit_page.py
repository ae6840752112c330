"""``/audit``: the hub auditor's page (docs/design.md §6): every access to one child,
everything one user did, a date range or the recent activity, read from the
tamper-evident log, with the latest signed checkpoint, and as CSV; each look-up is
audited first (server_common.audit.page)."""

from __future__ import annotations

from aiohttp import web

from national_hub.handlers import appkeys as k
from server_common.audit import page


def routes() -> list[web.RouteDef]:
    return page.page_routes(k.AUDIT, "National child id")
