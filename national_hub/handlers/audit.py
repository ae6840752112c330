"""The audit log for the hub's auditors (docs/design.md §6, docs/audit.md): the latest signed
checkpoint, inclusion and consistency proofs, and subject access, under ``/v1/audit/…``.
The handlers are the shared reader (server_common.audit.web), on the hub's log: only
the ``auditor`` role is admitted, and every read of entries is audited first."""

from __future__ import annotations

from aiohttp import web

from national_hub.handlers import appkeys as k
from server_common.audit import web as audit_web


def routes() -> list[web.RouteDef]:
    return audit_web.api_routes(k.AUDIT)
