"""The practitioner's pages at the hub: ``/`` (the search form and the results) and
``/children/{national_id}``; templates (``national_hub/templates``) in the same shell
and with the same form as a council node's pages (docs/pages.md).

They call the same code as the JSON API (``practitioner.search`` / ``.view``): the
same purpose rule, the same disclosure rules, audited before anything is shown.
Operators and auditors get the plain landing page at ``/`` and no search.

Names, dates of birth and NHS numbers never go into an address (browser history,
proxies' logs): the search form is sent by ``POST /`` (with the session's CSRF token),
and each result opens the child by ``POST /children/{id}`` with the search and its
purpose in the form body (so the child's page leads back to the same results). ``GET /``
with query fields still searches, so old bookmarks and links keep working, but no page
of the hub ever builds such an address. ``GET /children/{id}?purpose=…`` still works
too. The JSON API keeps ``GET /v1/search``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.handlers.practitioner import redirect_path, search, view
from national_hub.services.search import Redirect
from protocol.errors import ValidationError
from server_common import pages
from server_common.accounts import principal, require_roles
from server_common.accounts.principal import CHILD_READERS
from server_common.pages import CHILD_TITLE, FieldError
from server_common.search_form import (
    WHO_MISSING,
    SearchForm,
    form_errors,
    purpose_question,
    submitted,
)

SERVICE = "Signpost national hub"


def _search_page(request: web.Request, form: SearchForm, errors: list[FieldError],
                 hits: list[dict[str, Any]] | None = None, status: int = 200) -> web.Response:
    return pages.render(request, "search.html", {
        "title": "Search", "form": form, "errors": errors, "hits": hits,
        **form_errors(errors)}, status=status)


@require_roles()
async def home(request: web.Request) -> web.Response:
    """The search page for practitioners and index teams (a search by query string
    from an old bookmark still runs); the landing page for others."""
    if principal(request).role not in CHILD_READERS:  # links to their pages (the nav's)
        return pages.render(request, "landing.html")
    form = SearchForm.from_post(request.query)
    if not form.who_given:
        return _search_page(request, form, [])
    return await _results(request, form)


@require_roles(*CHILD_READERS)
async def search_page(request: web.Request) -> web.Response:
    """``POST /``: the search, from the form's fields."""
    return await _results(request, SearchForm.from_post(await submitted(request)))


async def _results(request: web.Request, form: SearchForm) -> web.Response:
    fields, errors = form.read()
    if errors:  # told what to put right, in plain words; nothing searched, nothing audited
        return _search_page(request, form, errors, status=400)
    try:
        _, hits = await search(request, fields)
    except ValidationError as exc:  # read() checks what search() does: a safety net
        return _search_page(request, form, [FieldError("given_name", WHO_MISSING)],
                            status=exc.status)
    return _search_page(request, form, [], [h.to_dict() for h in hits])


async def _index_teams(request: web.Request, contact: list[dict[str, str]]
                       ) -> list[dict[str, str | None]]:
    """Whom a shielded child's page says to contact, with the phone and email the
    council registry holds (``national-hub councils set-contact``)."""
    known = {c.code: c for c in await request.app[k.COUNCILS].index_teams(
        [c["council"] for c in contact])}
    return [{"council": c["council"], "name": c["name"],
             "phone": known[c["council"]].index_team_phone if c["council"] in known else None,
             "email": known[c["council"]].index_team_email if c["council"] in known else None}
            for c in contact]


@require_roles(*CHILD_READERS)
async def child_page(request: web.Request) -> web.Response:
    """``POST /children/{id}`` from a result (the whole search and its purpose in the
    form, for the way back), or ``GET /children/{id}?purpose=…``; without a purpose,
    the question first."""
    posted = await submitted(request)
    form = SearchForm.from_post(posted)
    if (asked := purpose_question(request, form, posted, "/")) is not None:
        return asked
    # audited first; 404 if unknown
    _, found = await view(request, {"purpose": form.purpose_text() or ""})
    if isinstance(found, Redirect):
        if request.method == "POST":  # the same form, re-sent to the surviving id
            raise web.HTTPTemporaryRedirect(f"/children/{found.to}")
        raise web.HTTPSeeOther(redirect_path("/children/", found.to, request))
    # the heading names the child, the title does not: browser history, tab and window
    # lists keep a page's title (a shared council PC shows them to the next person)
    return pages.render(request, "child.html", {
        "title": CHILD_TITLE, "child": found, "search": form,
        "teams": await _index_teams(request, found["contact"]) if found["shielded"] else []})


def routes() -> list[web.RouteDef]:
    return [web.get("/", home), web.post("/", search_page),
            web.get("/children/{national_id}", child_page),
            web.post("/children/{national_id}", child_page)]
