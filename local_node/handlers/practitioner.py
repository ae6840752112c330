"""The council's own practitioners: search the local index and open a child.

JSON at ``/v1/search`` and ``/v1/children/{local_id}``; the same as pages at
``/search`` and ``/children/{local_id}``. Every request states a purpose and is
recorded in the audit log before the answer is sent (no audit, no answer).

Names, dates of birth and identifiers stay out of URLs (browser history, proxy and
server logs): the search page's form is posted (``GET /search`` only shows it), and
``/v1/search`` takes a JSON body by POST. ``GET /v1/search`` with query parameters
is kept for API clients that cannot post. A result opens its child by a posted form
(``POST /children/{local_id}``, carrying the search for the way back); ``GET
/children/{local_id}?purpose=…`` still opens one.

What each viewer sees of a child is ``protocol.disclosure`` (see
``local_node.services.search``): a shielded child shows no location to anyone but
this council's index team, who see a clear notice that it is shielded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from local_node.handlers.appkeys import AUDIT, CONFIG, SEARCH
from local_node.handlers.notices import NOTICES
from protocol.disclosure import Viewer
from protocol.errors import ErrorCode, SignpostError, ValidationError
from protocol.search import QUERY_FIELDS, SearchQuery, parse_purpose
from server_common import pages
from server_common.accounts.principal import CHILD_READERS
from server_common.accounts.web import principal, require_roles
from server_common.pages import CHILD_TITLE, FieldError
from server_common.refusals import AUDIT_LOG
from server_common.search_form import (
    WHO_MISSING,
    SearchForm,
    form_errors,
    purpose_question,
    submitted,
)
from server_common.web import shown_json


async def _search(request: web.Request, submitted: Mapping[str, str],
                  ) -> tuple[str, list[dict[str, Any]]]:
    params = {k: submitted.get(k, "") for k in QUERY_FIELDS}
    purpose = parse_purpose(submitted)
    query = SearchQuery.parse(params)
    who = principal(request)
    hits = [h.to_dict() for h in await request.app[SEARCH].search(query, Viewer.of(who))]
    # where the search looked is sealed when the answer holds a shielded child: an
    # auditor reading the entry must not learn where the child lives (audit.sealing)
    asked = request.app[AUDIT_LOG].asked({k: v for k, v in params.items() if v},
                                         shielded=any(h["shielded"] for h in hits))
    await request.app[AUDIT](who, "search", purpose, asked, [h["local_id"] for h in hits])
    return purpose, hits


async def _child(request: web.Request, submitted: Mapping[str, str] | None = None,
                 ) -> tuple[str, dict[str, Any]]:
    purpose = parse_purpose(request.query if submitted is None else submitted)
    local_id = request.match_info["local_id"]
    who = principal(request)
    view = await request.app[SEARCH].child(local_id, Viewer.of(who))
    await request.app[AUDIT](who, "view_child", purpose, {"local_id": local_id}, [local_id])
    return purpose, view


def _is_text(value: object) -> bool:
    """A string of Unicode characters: JSON can also escape half of a UTF-16 pair
    (``"\\ud800"``), which no text (nor the audit entry of the search) can hold."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
        if name in body and not _is_text(body[name]):
            raise ValidationError(name, "must be text")
    return {k: v for k, v in body.items() if isinstance(v, str)}


@require_roles(*CHILD_READERS)
async def api_search(request: web.Request) -> web.Response:
    submitted = await _json_body(request) if request.method == "POST" else request.query
    _, hits = await _search(request, submitted)
    return shown_json({"results": hits})


@require_roles(*CHILD_READERS)
async def api_child(request: web.Request) -> web.Response:
    purpose, view = await _child(request)
    if "redirect" in view:  # merged into another child: its id lives on as a pointer
        raise web.HTTPPermanentRedirect(
            f"/v1/children/{view['redirect']}?{urlencode({'purpose': purpose})}")
    return shown_json(view)


# -- pages ---------------------------------------------------------------------------

def _council_name(request: web.Request) -> str:
    council = request.app[CONFIG].council
    return council.name or council.code


def _search_page(request: web.Request, form: SearchForm, errors: list[FieldError],
                 hits: list[dict[str, Any]] | None = None, status: int = 200) -> web.Response:
    return pages.render(request, "search.html", {
        "title": "Search", "form": form, "errors": errors, "hits": hits,
        "council": _council_name(request), **form_errors(errors)}, status=status)


@require_roles(*CHILD_READERS)
async def page_search(request: web.Request) -> web.Response:
    """GET shows the empty form (whatever the URL says); POST searches. Mistakes come
    back in plain words, linked to their fields; nothing is searched or audited."""
    if request.method != "POST":
        return _search_page(request, SearchForm(), [])
    form = SearchForm.from_post(await submitted(request))
    fields, errors = form.read()
    if errors:
        return _search_page(request, form, errors, status=400)
    try:
        _, hits = await _search(request, fields)
    except ValidationError as exc:  # read() checks what _search() does: a safety net
        return _search_page(request, form, [FieldError("given_name", WHO_MISSING)],
                            status=exc.status)
    return _search_page(request, form, [], hits)


@require_roles(*CHILD_READERS)
async def page_child(request: web.Request) -> web.Response:
    """``POST`` from a result (the whole search in the form, for the way back) or
    ``GET ?purpose=…``. What shows is the disclosure policy's (a shielded child: no
    location but to this council's index team, who see that it is shielded)."""
    posted = await submitted(request)
    search = SearchForm.from_post(posted)
    if (asked := purpose_question(request, search, posted, "/search")) is not None:
        return asked
    purpose, view = await _child(request, {"purpose": search.purpose_text() or ""})
    if "redirect" in view:
        if request.method == "POST":  # the same form, re-sent to the surviving record
            raise web.HTTPTemporaryRedirect(f"/children/{view['redirect']}")
        raise web.HTTPSeeOther(f"/children/{view['redirect']}?{urlencode({'purpose': purpose})}")
    council = request.app[CONFIG].council
    watched = await request.app[NOTICES].watching(principal(request))
    return pages.render(request, "child.html", {
        # titled without the child's name, as at the hub (server_common.pages.CHILD_TITLE)
        "title": CHILD_TITLE, "child": view, "search": search, "council": _council_name(request),
        "index_team": {"email": council.index_team_email, "phone": council.index_team_phone},
        "watching": view["local_id"] in watched})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/search", api_search),
        web.post("/v1/search", api_search),
        web.get("/v1/children/{local_id}", api_child),
        web.get("/search", page_search),
        web.post("/search", page_search),
        web.get("/children/{local_id}", page_child),
        web.post("/children/{local_id}", page_child),
    ]
