"""``/audit``: the auditor's page (DESIGN §6). Every access to one child, or everything
one user did, read from the tamper-evident log, with the latest signed checkpoint.
The look-up is audited first, as through the API (fail closed)."""

from __future__ import annotations

import html
import json

from aiohttp import web

from national_hub.handlers import keys as k
from national_hub.handlers.audit import subject_access
from protocol.errors import ValidationError
from server_common.accounts import Role, csrf_token, principal, require_roles
from server_common.accounts.pages import who_block
from server_common.audit.service import AuditRecord
from server_common.practitioner_pages import error_message, page


def _form(child_id: str, user: str) -> str:
    e = html.escape
    return ('<form method="get" action="/audit">'
            f'<label>National child id <input name="child_id" value="{e(child_id)}"></label>'
            f'<label>or user <input name="user" value="{e(user)}"></label>'
            "<button>Show accesses</button></form>")


def _table(found: list[AuditRecord]) -> str:
    e = html.escape
    if not found:
        return '<p id="none">No access is recorded.</p>'
    rows = "".join(
        f'<tr data-seq="{r.seq}"><td>{r.seq}</td><td>{e(r.to_dict()["at"])}</td>'
        f"<td>{e(r.entry.who)}</td><td>{e(r.entry.role)}</td>"
        f"<td>{e(r.entry.organisation or '–')}</td><td>{e(r.entry.action)}</td>"
        f"<td>{e(r.entry.purpose)}</td>"
        f"<td><code>{e(json.dumps(r.entry.parameters, ensure_ascii=False))}</code></td>"
        f"<td>{e(', '.join(r.entry.child_ids) or '–')}</td></tr>"
        for r in found)
    return ('<table id="entries"><tr><th>#</th><th>When (UTC)</th><th>Who</th><th>Role</th>'
            "<th>Organisation</th><th>Action</th><th>Purpose</th><th>Parameters</th>"
            f"<th>Children</th></tr>{rows}</table>")


@require_roles(Role.AUDITOR)
async def audit_page(request: web.Request) -> web.Response:
    e = html.escape
    child_id = request.query.get("child_id", "").strip()
    user = request.query.get("user", "").strip()
    checkpoint = await request.app[k.AUDIT].latest_checkpoint()
    signed = ("<p>No checkpoint signed yet.</p>" if checkpoint is None else
              f'<p id="checkpoint">Latest signed checkpoint: {checkpoint.size} entries, '
              f"root {e(str(checkpoint.to_dict()['root_hash']))}, at "
              f"{e(str(checkpoint.to_dict()['time']))}.</p>")
    head = (f"<header>{who_block(principal(request), csrf_token(request))}</header>"
            f"<h1>Audit log</h1>{signed}")
    if not child_id and not user:
        return page("Audit log", head + _form("", ""))
    try:
        found = await subject_access(request)
    except ValidationError as exc:
        return page("Audit log", head + error_message(exc.message, str(exc.code))
                    + _form(child_id, user), status=400)
    subject = f"child {child_id}" if child_id else f"user {user}"
    return page(f"Audit log – {subject}",
                head + _form(child_id, user) + f"<h2>Accesses: {e(subject)}</h2>"
                + _table(found))


def routes() -> list[web.RouteDef]:
    return [web.get("/audit", audit_page)]
