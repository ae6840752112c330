"""The auditor's reader, the same at hub and node (docs/design.md §6, docs/audit.md): the latest
signed checkpoint, inclusion and consistency proofs, subject access (every entry about
one child, or by one user) as JSON under ``/v1/audit/…``; the ``/audit`` page is
:mod:`server_common.audit.page`.
Hashes are standard base64, as in the checkpoint note.

Only the ``auditor`` role is admitted. Every read of entries is itself audited before
anything is shown (fail closed): the subject-access look-ups, and inclusion proofs,
which return a whole entry (recorded with that entry's child ids, so the child's own
subject access shows who read about it).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from aiohttp import web

from protocol.errors import NotFoundError, ValidationError
from server_common.accounts import Role, principal, require_roles
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog, AuditRecord
from server_common.web import whole_number

AuditKey = web.AppKey[AuditLog]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64s(items: Sequence[bytes]) -> list[str]:
    return [_b64(x) for x in items]


def _count(request: web.Request, name: str) -> int:
    count = whole_number(request.query.get(name, ""))
    if count is None:
        raise ValidationError(name, "a whole number ≥ 0 is required")
    return count


def printable(text: str, name: str) -> str:
    """A look-up (a child id, a user name) holds no control character: a NUL is refused
    by PostgreSQL in text, which would be a 500 (or, in the audit entry recording the
    look-up, fail every read written in the same group commit)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValidationError(name, "must not contain control characters")
    return text


async def _record(request: web.Request, audit: AuditLog, action: str,
                  parameters: dict[str, object], child_ids: Sequence[str] = ()) -> None:
    who = principal(request)
    await audit.record(AuditEntry(who.user, str(who.role), who.organisation, purpose="audit",
                                  action=action, parameters=parameters,
                                  child_ids=tuple(child_ids)))


async def subject_access(request: web.Request, audit: AuditLog) -> list[AuditRecord]:
    """``?child_id=`` (every access to one child) or ``?user=`` (everything one user
    did), the look-up itself audited first. The API and the page share it."""
    child_id = printable(request.query.get("child_id", "").strip(), "child_id")
    user = printable(request.query.get("user", "").strip(), "user")
    if bool(child_id) == bool(user):
        raise ValidationError("child_id", "give exactly one of child_id and user")
    await _record(request, audit, "audit.entries",
                  {"child_id": child_id} if child_id else {"user": user},
                  (child_id,) if child_id else ())
    return await (audit.entries_for_child(child_id) if child_id
                  else audit.entries_by_user(user))


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
