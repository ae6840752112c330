"""The council's own practitioners: search the local index and open a child.

JSON at ``/v1/search`` and ``/v1/children/{local_id}``; the same as pages at
``/search`` and ``/children/{local_id}``. Every request states a purpose and is
recorded in the audit log before the answer is sent (no audit, no answer).

Names, dates of birth and identifiers stay out of URLs (browser history, proxy and
server logs): the search page's form is posted (``GET /search`` only shows it), and
``/v1/search`` takes a JSON body by POST. ``GET /v1/search`` with query parameters
is kept for API clients that cannot post; links to a child carry only the purpose.

What each viewer sees of a child is ``protocol.disclosure`` (see
``local_node.services.search``): a shielded child shows no location to anyone but
this council's index team, who see a clear notice that it is shielded.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from local_node.handlers.appkeys import AUDIT, CONFIG, SEARCH
from protocol.disclosure import Viewer
from protocol.errors import ErrorCode, SignpostError, ValidationError
from protocol.search import QUERY_FIELDS, SearchQuery, parse_purpose
from server_common.accounts import csrf_token
from server_common.accounts.principal import CHILD_READERS
from server_common.accounts.web import principal, require_roles
from server_common.practitioner_pages import form_values, page, search_form


async def _search(request: web.Request, submitted: Mapping[str, str],
                  ) -> tuple[str, list[dict[str, Any]]]:
    params = {k: submitted.get(k, "") for k in QUERY_FIELDS}
    purpose = parse_purpose(submitted)
    query = SearchQuery.parse(params)
    who = principal(request)
    hits = [h.to_dict() for h in await request.app[SEARCH].search(query, Viewer.of(who))]
    await request.app[AUDIT](who, "search", purpose, {k: v for k, v in params.items() if v},
                             [h["local_id"] for h in hits])
    return purpose, hits


async def _child(request: web.Request) -> tuple[str, dict[str, Any]]:
    purpose = parse_purpose(request.query)
    local_id = request.match_info["local_id"]
    who = principal(request)
    view = await request.app[SEARCH].child(local_id, Viewer.of(who))
    await request.app[AUDIT](who, "view_child", purpose, {"local_id": local_id}, [local_id])
    return purpose, view


async def _json_body(request: web.Request) -> dict[str, str]:
    """A search posted as a JSON object of text fields (the same names as the query)."""
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested too deep
        raise SignpostError("the body must be a JSON object",
                            code=ErrorCode.MALFORMED_REQUEST) from exc
    if not isinstance(body, dict):
        raise SignpostError("the body must be a JSON object", code=ErrorCode.MALFORMED_REQUEST)
    for name in (*QUERY_FIELDS, "purpose"):
        if name in body and not isinstance(body[name], str):
            raise ValidationError(name, "must be text")
    return {k: v for k, v in body.items() if isinstance(v, str)}


@require_roles(*CHILD_READERS)
async def api_search(request: web.Request) -> web.Response:
    submitted = await _json_body(request) if request.method == "POST" else request.query
    _, hits = await _search(request, submitted)
    return web.json_response({"results": hits})


@require_roles(*CHILD_READERS)
async def api_child(request: web.Request) -> web.Response:
    purpose, view = await _child(request)
    if "redirect" in view:  # merged into another child: its id lives on as a pointer
        raise web.HTTPPermanentRedirect(
            f"/v1/children/{view['redirect']}?{urlencode({'purpose': purpose})}")
    return web.json_response(view)


# -- pages ---------------------------------------------------------------------------

def _council_name(request: web.Request) -> str:
    council = request.app[CONFIG].council
    return council.name or council.code


def _search_page(request: web.Request, values: dict[str, str], extra: str = "",
                 error: ValidationError | None = None) -> web.Response:
    form = search_form(values, error.message if error else None, action="/search",
                       csrf_token=csrf_token(request), code=str(error.code) if error else None)
    return page("Search", f"<h1>Find a child – {html.escape(_council_name(request))}</h1>"
                          f"{form}{extra}", status=400 if error else 200)


@require_roles(*CHILD_READERS)
async def page_search(request: web.Request) -> web.Response:
    """GET shows the empty form (whatever the URL says); POST searches."""
    e = html.escape
    if request.method != "POST":
        return _search_page(request, form_values({}))
    try:
        values = form_values(await request.post())
    except ValueError as exc:  # a form body that is not in its stated encoding
        raise SignpostError("the form could not be read",
                            code=ErrorCode.MALFORMED_REQUEST) from exc
    if not any(values[k] for k in QUERY_FIELDS):
        return _search_page(request, values)
    try:
        purpose, hits = await _search(request, values)
    except ValidationError as exc:
        return _search_page(request, values, error=exc)
    rows = "".join(
        f'<tr><td><a href="/children/{e(h["local_id"])}?{e(urlencode({"purpose": purpose}))}">'
        f'{e(h["given_name"] or "–")} {e(h["family_name"] or "–")}</a></td>'
        f'<td>{e(h["dob"] or "not known")}</td>'
        f'<td>{e(h["postcode_district"] or "–")}</td>'
        f'<td>{"shielded" if h["shielded"] else ""}</td><td>{h["confidence"]:.0%}</td></tr>'
        for h in hits)
    table = (f"<table><tr><th>Name</th><th>Born</th><th>Area</th><th></th>"
             f"<th>Confidence</th></tr>{rows}</table>" if hits else "<p>No child matches.</p>")
    return _search_page(request, values, table)


def _shielded_notice(request: web.Request, view: dict[str, Any]) -> str:
    council = html.escape(_council_name(request))
    if view.get("withheld"):
        return (f'<p class="notice" role="note" data-shielded="withheld">This child is '
                f"shielded. Their address, postcode, UPN, school, GP, services and family "
                f"contacts are withheld. To share information or to reach the professionals "
                f"involved, contact the {council} index team.</p>")
    via = view.get("shielded_via")
    why = ("" if via in (None, view["local_id"])
           else f" through record {html.escape(str(via))}, which may be the same child")
    return (f'<p class="notice" role="note" data-shielded="shown">Shielded child{why}. '
            f"You see the detail as the {council} index team: practitioners see none of "
            f"the location and are told to contact you.</p>")


@require_roles(*CHILD_READERS)
async def page_child(request: web.Request) -> web.Response:
    e = html.escape
    purpose, view = await _child(request)
    if "redirect" in view:
        raise web.HTTPSeeOther(f"/children/{view['redirect']}?{urlencode({'purpose': purpose})}")
    name = f"{view['given_name'] or '–'} {view['family_name'] or '–'}"
    heading = (f'<p><a href="/search">New search</a></p><h1>{e(name)}</h1>'
               # a name or the date of birth no source supplies (issue 14): the index
               # team sees why, to chase the source
               + (f'<p class="notice" data-incomplete>Incomplete: {e(view["incomplete"])}</p>'
                  if view.get("incomplete") else ""))
    notice = _shielded_notice(request, view) if view["shielded"] else ""
    if view.get("withheld"):
        return page(name, (
            f"{heading}{notice}<p>Born {e(view['dob'] or 'not known')} · "
            f"NHS {e(view['nhs_number'] or '–')}</p>"))
    invs = "".join(
        f'<tr><td>{e(i["service_type"])}</td><td>{e(i["organisation_name"] or "–")}</td>'
        f'<td>{e(i["professional_name"] or "–")} {e(i["professional_role"] or "")}</td>'
        f'<td>{e(i["professional_phone"] or i["organisation_phone"] or "–")}</td>'
        f'<td>{"lead professional" if i["lead_professional"] else ""}'
        f'{" · CAF done" if i["caf_done"] else ""}</td></tr>'
        for i in view["involvements"])
    return page(name, (
        f"{heading}{notice}"
        f"<p>Born {e(view['dob'] or 'not known')} · NHS {e(view['nhs_number'] or '–')} · "
        f"UPN {e(view['upn'] or '–')}</p>"
        f"<p>{e(view['address_line'] or '')} {e(view['postcode'] or '')}</p>"
        f"<p>Parent/carer: {e(view['parent_carer']['name'] or '–')} "
        f"{e(view['parent_carer']['phone'] or '')}</p>"
        f"<h2>Who is involved</h2><table><tr><th>Service</th><th>Organisation</th>"
        f"<th>Professional</th><th>Phone</th><th></th></tr>{invs}</table>"))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/search", api_search),
        web.post("/v1/search", api_search),
        web.get("/v1/children/{local_id}", api_child),
        web.get("/search", page_search),
        web.post("/search", page_search),
        web.get("/children/{local_id}", page_child),
    ]
