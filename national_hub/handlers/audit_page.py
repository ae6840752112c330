"""``/audit``: the hub auditor's page (docs/design.md §6). Every access to one child, or
everything one user did, read from the tamper-evident log, with the latest signed
checkpoint; the look-up is audited first, as through the API (server_common.audit.web)."""

from __future__ import annotations

from aiohttp import web

from national_hub.handlers import appkeys as k
from server_common.audit import web as audit_web


def routes() -> list[web.RouteDef]:
    return audit_web.page_routes(k.AUDIT, "National child id")
