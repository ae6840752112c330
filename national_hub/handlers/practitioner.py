"""Practitioners at the hub: ``GET /v1/search`` and ``GET /v1/children/{national_id}``.

Practitioners and index teams only. Every request states a purpose, and what it is
about to show (the national ids) is written to the audit log before the answer
leaves: if the audit write fails the request fails (503 ``unavailable``) and
nothing is shown. The pages at ``/`` and ``/children/{id}`` are ``practitioner_pages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.services.search import ChildHit, Redirect
from protocol.disclosure import Viewer
from protocol.search import SearchQuery, parse_purpose
from server_common.accounts import principal, require_roles
from server_common.accounts.principal import CHILD_READERS
from server_common.audit.entry import AuditEntry
from server_common.web import shown_json


async def audited(request: web.Request, action: str, purpose: str,
                  parameters: Mapping[str, str], national_ids: list[str]) -> None:
    """Record who looked at which children, why; raises (fail closed) if it cannot."""
    who = principal(request)
    await request.app[k.AUDIT].record(AuditEntry(
        who.user, str(who.role), who.organisation, purpose, action, dict(parameters),
        tuple(national_ids)))


async def search(request: web.Request, fields: Mapping[str, str] | None = None
                 ) -> tuple[str, list[ChildHit]]:
    """Validate, search, audit: (purpose, hits). ``fields``: a page's posted form (the
    JSON API reads the query string)."""
    fields = request.query if fields is None else fields
    purpose = parse_purpose(fields)
    query = SearchQuery.parse(fields)
    hits = await request.app[k.SEARCH].search(query)
    # where the search looked is sealed when the answer holds a shielded child: an
    # auditor reading the entry must not learn where the child lives (audit.sealing)
    asked = request.app[k.AUDIT].asked(query.parameters(),
                                       shielded=any(h.shielded for h in hits))
    await audited(request, "search", purpose, asked, [h.national_id for h in hits])
    return purpose, hits


async def view(request: web.Request, fields: Mapping[str, str] | None = None
               ) -> tuple[str, dict[str, Any] | Redirect]:
    """Validate, read the child as this user may see it, audit: (purpose, view)."""
    purpose = parse_purpose(request.query if fields is None else fields)
    national_id = request.match_info["national_id"]
    found = await request.app[k.SEARCH].child(national_id, Viewer.of(principal(request)))
    if isinstance(found, Redirect):
        await audited(request, "view_child", purpose,
                      {"national_id": national_id, "redirect_to": found.to},
                      [national_id, found.to])
    else:
        await audited(request, "view_child", purpose, {"national_id": national_id},
                      [national_id])
    return purpose, found


@require_roles(*CHILD_READERS)
async def api_search(request: web.Request) -> web.Response:
    _, hits = await search(request)
    return shown_json({"results": [h.to_dict() for h in hits]})


@require_roles(*CHILD_READERS)
async def api_child(request: web.Request) -> web.Response:
    _, found = await view(request)
    if isinstance(found, Redirect):  # merged into another child: the id lives on as a pointer
        raise web.HTTPPermanentRedirect(redirect_path("/v1/children/", found.to, request))
    return shown_json(found)


def redirect_path(prefix: str, national_id: str, request: web.Request) -> str:
    """The surviving id's address, with the request's query string (its purpose) as
    sent: decoded, a purpose's ``#``, ``&`` or ``+`` would change what reaches it."""
    query = request.rel_url.raw_query_string
    return f"{prefix}{national_id}" + (f"?{query}" if query else "")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/search", api_search),
        web.get("/v1/children/{national_id}", api_child),
    ]
