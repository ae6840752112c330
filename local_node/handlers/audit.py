"""The node's audit log for the council's auditors (docs/design.md §6, docs/audit.md): the
latest checkpoint signed with the council key, inclusion and consistency proofs, subject
access by local child id or by user, as JSON under ``/v1/audit/…`` and the ``/audit``
page. The shared reader (server_common.audit.web): only the ``auditor`` role is
admitted, and every read of entries is audited first."""

from __future__ import annotations

from aiohttp import web

from server_common.audit import page
from server_common.audit import web as audit_web
from server_common.refusals import AUDIT_LOG  # one key: the refusal middleware finds it too


def routes() -> list[web.RouteDef]:
    return [*audit_web.api_routes(AUDIT_LOG), *page.page_routes(AUDIT_LOG, "Child id")]
