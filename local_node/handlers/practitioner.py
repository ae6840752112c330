"""The council's own practitioners: search the local index and open a child.

JSON at ``/v1/search`` and ``/v1/children/{local_id}``; the same as pages at
``/search`` and ``/children/{local_id}``. Every request states a purpose and is
recorded in the audit log before the answer is sent (no audit, no answer).
Sensitive services are shown only to the council's own index team.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from local_node.handlers.keys import AUDIT, CONFIG, SEARCH
from protocol.errors import ValidationError
from protocol.search import QUERY_FIELDS, SearchQuery, parse_purpose
from server_common.accounts.principal import CHILD_READERS, Principal, Role
from server_common.accounts.web import principal, require_roles
from server_common.practitioner_pages import page, query_values, search_form


def _sees_sensitive(request: web.Request, who: Principal) -> bool:
    return who.role == Role.INDEX_TEAM and who.council == request.app[CONFIG].council.code


async def _search(request: web.Request) -> tuple[SearchQuery, str, list[dict[str, Any]]]:
    params = {k: request.query.get(k, "") for k in QUERY_FIELDS}
    purpose = parse_purpose(request.query)
    query = SearchQuery.parse(params)
    hits = [h.to_dict() for h in await request.app[SEARCH].search(query)]
    await request.app[AUDIT](principal(request), "search", purpose,
                             {k: v for k, v in params.items() if v},
                             [h["local_id"] for h in hits])
    return query, purpose, hits


async def _child(request: web.Request) -> tuple[str, dict[str, Any]]:
    purpose = parse_purpose(request.query)
    local_id = request.match_info["local_id"]
    who = principal(request)
    view = await request.app[SEARCH].child(local_id, see_sensitive=_sees_sensitive(request, who))
    await request.app[AUDIT](who, "view_child", purpose, {"local_id": local_id}, [local_id])
    return purpose, view


@require_roles(*CHILD_READERS)
async def api_search(request: web.Request) -> web.Response:
    _, _, hits = await _search(request)
    return web.json_response({"results": hits})


@require_roles(*CHILD_READERS)
async def api_child(request: web.Request) -> web.Response:
    purpose, view = await _child(request)
    if "redirect" in view:  # merged into another child: its id lives on as a pointer
        raise web.HTTPPermanentRedirect(
            f"/v1/children/{view['redirect']}?{urlencode({'purpose': purpose})}")
    return web.json_response(view)


# -- pages ---------------------------------------------------------------------------

def _form(values: dict[str, str], error: str | None, csrf: str = "") -> str:
    return search_form(values, error, action="/search", csrf_token=csrf)


@require_roles(*CHILD_READERS)
async def page_search(request: web.Request) -> web.Response:
    e = html.escape
    values = query_values(request)
    council = request.app[CONFIG].council.name or request.app[CONFIG].council.code
    if not any(values[k] for k in QUERY_FIELDS):
        return page("Search", f"<h1>Find a child – {e(council)}</h1>{_form(values, None)}")
    try:
        _, purpose, hits = await _search(request)
    except ValidationError as exc:
        return page("Search", f"<h1>Find a child</h1>{_form(values, exc.message)}")
    rows = "".join(
        f'<tr><td><a href="/children/{e(h["local_id"])}?{e(urlencode({"purpose": purpose}))}">'
        f'{e(h["given_name"])} {e(h["family_name"])}</a></td><td>{e(h["dob"])}</td>'
        f'<td>{e(h["postcode_district"] or "–")}</td><td>{h["confidence"]:.0%}</td></tr>'
        for h in hits)
    table = (f"<table><tr><th>Name</th><th>Born</th><th>Area</th><th>Confidence</th></tr>"
             f"{rows}</table>" if hits else "<p>No child matches.</p>")
    return page("Search", f"<h1>Find a child – {e(council)}</h1>{_form(values, None)}{table}")


@require_roles(*CHILD_READERS)
async def page_child(request: web.Request) -> web.Response:
    e = html.escape
    purpose, view = await _child(request)
    if "redirect" in view:
        raise web.HTTPSeeOther(f"/children/{view['redirect']}?{urlencode({'purpose': purpose})}")
    invs = "".join(
        f'<tr><td>{e(i["service_type"])}</td><td>{e(i["organisation_name"] or "–")}</td>'
        f'<td>{e(i["professional_name"] or "–")} {e(i["professional_role"] or "")}</td>'
        f'<td>{e(i["professional_phone"] or i["organisation_phone"] or "–")}</td>'
        f'<td>{"lead professional" if i["lead_professional"] else ""}'
        f'{" · CAF done" if i["caf_done"] else ""}</td></tr>'
        for i in view["involvements"])
    hidden = (f"<p>{view['sensitive_hidden']} sensitive service(s) not shown to your role.</p>"
              if view["sensitive_hidden"] else "")
    return page(f"{view['given_name']} {view['family_name']}", (
        f'<p><a href="/search">New search</a></p>'
        f"<h1>{e(view['given_name'])} {e(view['family_name'])}</h1>"
        f"<p>Born {e(view['dob'])} · NHS {e(view['nhs_number'] or '–')} · "
        f"UPN {e(view['upn'] or '–')}</p>"
        f"<p>{e(view['address_line'] or '')} {e(view['postcode'] or '')}</p>"
        f"<h2>Who is involved</h2><table><tr><th>Service</th><th>Organisation</th>"
        f"<th>Professional</th><th>Phone</th><th></th></tr>{invs}</table>{hidden}"))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/search", api_search),
        web.get("/v1/children/{local_id}", api_child),
        web.get("/search", page_search),
        web.get("/children/{local_id}", page_child),
    ]
