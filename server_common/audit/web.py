"""The auditor's reader, the same at hub and node (docs/design.md §6, docs/audit.md): the latest
signed checkpoint, inclusion and consistency proofs, subject access (every entry about
one child, or by one user) as JSON under ``/v1/audit/…`` and as the ``/audit`` page.
Hashes are standard base64, as in the checkpoint note.

Only the ``auditor`` role is admitted. Every read of entries is itself audited before
anything is shown (fail closed): the subject-access look-ups, and inclusion proofs,
which return a whole entry (recorded with that entry's child ids, so the child's own
subject access shows who read about it).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence

from aiohttp import web

from protocol.errors import NotFoundError, ValidationError
from server_common.accounts import Role, csrf_token, principal, require_roles
from server_common.accounts.pages import who_block
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog, AuditRecord
from server_common.practitioner_pages import error_message, page

AuditKey = web.AppKey[AuditLog]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64s(items: Sequence[bytes]) -> list[str]:
    return [_b64(x) for x in items]


def _count(request: web.Request, name: str) -> int:
    raw = request.query.get(name, "")
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationError(name, "a whole number ≥ 0 is required")
    return int(raw)


async def _record(request: web.Request, audit: AuditLog, action: str,
                  parameters: dict[str, object], child_ids: Sequence[str] = ()) -> None:
    who = principal(request)
    await audit.record(AuditEntry(who.user, str(who.role), who.organisation, purpose="audit",
                                  action=action, parameters=parameters,
                                  child_ids=tuple(child_ids)))


async def subject_access(request: web.Request, audit: AuditLog) -> list[AuditRecord]:
    """``?child_id=`` (every access to one child) or ``?user=`` (everything one user
    did), the look-up itself audited first. The API and the page share it."""
    child_id = request.query.get("child_id", "").strip()
    user = request.query.get("user", "").strip()
    if bool(child_id) == bool(user):
        raise ValidationError("child_id", "give exactly one of child_id and user")
    await _record(request, audit, "audit.entries",
                  {"child_id": child_id} if child_id else {"user": user},
                  (child_id,) if child_id else ())
    return await (audit.entries_for_child(child_id) if child_id
                  else audit.entries_by_user(user))


def _form(child_label: str, child_id: str, user: str) -> str:
    e = html.escape
    return ('<form method="get" action="/audit">'
            f'<label>{e(child_label)} <input name="child_id" value="{e(child_id)}"></label>'
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


def api_routes(key: AuditKey) -> list[web.RouteDef]:
    @require_roles(Role.AUDITOR)
    async def get_checkpoint(request: web.Request) -> web.Response:
        checkpoint = await request.app[key].latest_checkpoint()
        if checkpoint is None:
            raise NotFoundError("no checkpoint has been signed yet")
        return web.json_response(checkpoint.to_dict())

    @require_roles(Role.AUDITOR)
    async def get_inclusion_proof(request: web.Request) -> web.Response:
        audit = request.app[key]
        proof = await audit.inclusion_proof(_count(request, "seq"), _count(request, "tree_size"))
        try:
            children = AuditEntry.from_bytes(proof.entry).child_ids
        except (ValueError, UnicodeDecodeError):
            children = ()  # a damaged entry is still shown: 'audit verify' names it
        # The answer holds the whole entry: its reading is recorded before it leaves.
        await _record(request, audit, "audit.inclusion_proof",
                      {"seq": proof.seq, "tree_size": proof.tree_size}, children)
        return web.json_response({
            "seq": proof.seq, "tree_size": proof.tree_size,
            "entry": proof.entry.decode("utf-8", errors="replace"),
            "leaf_hash": _b64(proof.leaf_hash), "root_hash": _b64(proof.root_hash),
            "proof": _b64s(proof.proof),
        })

    @require_roles(Role.AUDITOR)
    async def get_consistency_proof(request: web.Request) -> web.Response:
        proof = await request.app[key].consistency_proof(_count(request, "first"),
                                                         _count(request, "second"))
        return web.json_response({
            "first": proof.first, "second": proof.second,
            "first_root": _b64(proof.first_root), "second_root": _b64(proof.second_root),
            "proof": _b64s(proof.proof),
        })

    @require_roles(Role.AUDITOR)
    async def get_entries(request: web.Request) -> web.Response:
        found = await subject_access(request, request.app[key])
        return web.json_response({"entries": [r.to_dict() for r in found]})

    return [
        web.get("/v1/audit/checkpoint", get_checkpoint),
        web.get("/v1/audit/proof/inclusion", get_inclusion_proof),
        web.get("/v1/audit/proof/consistency", get_consistency_proof),
        web.get("/v1/audit/entries", get_entries),
    ]


def page_routes(key: AuditKey, child_label: str) -> list[web.RouteDef]:
    @require_roles(Role.AUDITOR)
    async def audit_page(request: web.Request) -> web.Response:
        e = html.escape
        child_id = request.query.get("child_id", "").strip()
        user = request.query.get("user", "").strip()
        checkpoint = await request.app[key].latest_checkpoint()
        signed = ("<p>No checkpoint signed yet.</p>" if checkpoint is None else
                  f'<p id="checkpoint">Latest signed checkpoint: {checkpoint.size} entries, '
                  f"root {e(str(checkpoint.to_dict()['root_hash']))}, at "
                  f"{e(str(checkpoint.to_dict()['time']))}.</p>")
        head = (f"<header>{who_block(principal(request), csrf_token(request))}</header>"
                f"<h1>Audit log</h1>{signed}")
        if not child_id and not user:
            return page("Audit log", head + _form(child_label, "", ""))
        try:
            found = await subject_access(request, request.app[key])
        except ValidationError as exc:
            return page("Audit log", head + error_message(exc.message, str(exc.code))
                        + _form(child_label, child_id, user), status=400)
        subject = f"child {child_id}" if child_id else f"user {user}"
        return page(f"Audit log – {subject}",
                    head + _form(child_label, child_id, user)
                    + f"<h2>Accesses: {e(subject)}</h2>" + _table(found))

    return [web.get("/audit", audit_page)]
