"""The practitioner's pages at the hub: ``/`` (who is signed in, the search form and
the results) and ``/children/{national_id}``; server-rendered, the same look as a
council node's pages (``server_common.practitioner_pages``).

They call the same code as the JSON API (``practitioner.search`` / ``.view``): the
same purpose rule, the same disclosure rules, audited before anything is shown.
Operators and auditors get the plain landing page at ``/`` and no search.

Names, dates of birth and NHS numbers never go into an address (browser history,
proxies' logs): the search form is sent by ``POST /`` (with the session's CSRF token),
and each result opens the child by ``POST /children/{id}`` with the purpose in the form
body. ``GET /`` with query fields still searches, so old bookmarks and links keep
working, but no page of the hub ever builds such an address. ``GET
/children/{id}?purpose=…`` still works too. The JSON API keeps ``GET /v1/search``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from national_hub.handlers.practitioner import redirect_path, search, view
from national_hub.services.search import Redirect
from protocol.errors import SignpostError, ValidationError
from protocol.search import parse_purpose
from server_common import pages
from server_common.accounts import csrf_token, principal, require_roles
from server_common.accounts.pages import who_block
from server_common.accounts.principal import CHILD_READERS
from server_common.pages import FieldError
from server_common.practitioner_pages import error_message, page
from server_common.search_form import WHO_MISSING, SearchForm, form_errors

SERVICE = "Signpost national hub"
SEX = {0: "not known", 1: "male", 2: "female", 9: "not specified"}
e = html.escape


def _header(request: web.Request) -> str:
    return f"<header>{who_block(principal(request), csrf_token(request))}</header>"


def _contact(contact: list[dict[str, str]]) -> str:
    teams = " and ".join(f"<strong>{e(c['name'])}</strong>" for c in contact)
    return f"contact the index team of {teams}"


TITLE = "Find a child"


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
    return await _results(request, SearchForm.from_post(await request.post()))


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


def _service_row(s: dict[str, Any]) -> str:
    who = " ".join(x for x in (s["professional_name"], s["professional_role"] and
                               f"({s['professional_role']})") if x)
    contact = " · ".join(x for x in (s["professional_phone"] or s["organisation_phone"],
                                     s["professional_email"]) if x)
    dates = " – ".join(x for x in (s["start_date"], s["end_date"]) if x)
    flags = " · ".join(x for x, on in (("lead professional", s["lead_professional"]),
                                       ("CAF done", s["caf_done"]),
                                       ("sensitive", s["sensitive"])) if on)
    return (f"<tr><td>{e(s['service_type'])}</td><td>{e(s['organisation_name'] or '–')}</td>"
            f"<td>{e(who or '–')}</td><td>{e(contact or '–')}</td><td>{e(dates or '–')}</td>"
            f"<td>{e(flags)}</td></tr>")


def _council(c: dict[str, Any]) -> str:
    names = f"{c['given_name'] or '–'} {c['family_name'] or '–'}"
    if c["former_family_names"]:
        names += f" (formerly {', '.join(c['former_family_names'])})"
    head = (f'<section class="council" data-council="{e(c["council"])}">'
            f"<h2>{e(c['council_name'])}</h2>"
            f"<p>Known as {e(names)}, born {e(c['dob'] or 'not known')} · "
            f"NHS {e(c['nhs_number'] or '–')} · "
            f"record updated {e(c['updated_at'][:10])}</p>")
    if c["withheld"]:
        return head + ("<p>Address, school, GP and every service are withheld: "
                       "this child is shielded.</p></section>")
    carer = c["parent_carer"]
    lead = c["lead_professional"]
    rows = "".join(_service_row(s) for s in c["services"])
    return head + (
        f"<p>Address: {e(c['address_line'] or '–')} {e(c['postcode'] or '')}"
        f" · UPN {e(c['upn'] or '–')}</p>"
        f"<p>Parent/carer: {e(carer['name'] or '–')} {e(carer['phone'] or '')}</p>"
        f"<p>Lead professional: {e(lead['professional_name'] or '–') if lead else 'none'}"
        f"{' · CAF done' if c['caf_done'] else ''}</p>"
        "<table><tr><th>Service</th><th>Organisation</th><th>Professional</th>"
        f"<th>Contact</th><th>Dates</th><th></th></tr>{rows}</table></section>")


def _purpose_form(request: web.Request, error: str | None) -> web.Response:
    return page("Why are you looking?", (
        '<p><a href="/">New search</a></p><h1>Why are you looking?</h1>'
        f"{error_message(error, 'invalid_field' if error else None)}"
        f'<form method="post" action="{e(request.path)}">'
        f'<input type="hidden" name="csrf_token" value="{e(csrf_token(request))}">'
        '<label>Purpose <input name="purpose" required></label><button>Open</button></form>'),
        400 if error else 200)


@require_roles(*CHILD_READERS)
async def child_page(request: web.Request) -> web.Response:
    """``GET /children/{id}?purpose=…`` or ``POST`` with the purpose in the form."""
    fields: Mapping[str, str] = request.query
    if request.method == "POST":
        # the result's form carries the whole search (for the way back) and its purpose
        fields = {"purpose": SearchForm.from_post(await request.post()).purpose_text() or ""}
    try:
        parse_purpose(fields)
    except ValidationError as exc:
        return _purpose_form(request, exc.message if "purpose" in fields else None)
    try:
        _, found = await view(request, fields)
    except SignpostError as exc:  # unknown id, or no audit: nothing shown
        return page("Not shown", '<p><a href="/">New search</a></p>'
                    + error_message(exc.message, str(exc.code)), exc.status)
    if isinstance(found, Redirect):
        if request.method == "POST":  # the same form, re-sent to the surviving id
            raise web.HTTPTemporaryRedirect(f"/children/{found.to}")
        raise web.HTTPSeeOther(redirect_path("/children/", found.to, request))
    notice = ""
    if found["shielded"]:
        notice = ('<div class="notice" id="shielded" role="note"><strong>Shielded.</strong> '
                  "Where this child lives, and the school, GP and services involved, are not "
                  f"shown. To reach them, {_contact(found['contact'])}, who can see these "
                  "details and will broker contact.</div>")
    name = f"{found['given_name'] or '–'} {found['family_name'] or '–'}"
    return page(name, (
        '<p><a href="/">New search</a></p>'
        f"<h1>{e(name)}</h1>"
        f"<p>Born {e(found['dob'] or 'not known')} · {e(SEX.get(found['sex'], '–'))} · "
        f"national id {e(found['national_id'])}</p>{notice}"
        + "".join(_council(c) for c in found["councils"])))


def routes() -> list[web.RouteDef]:
    return [web.get("/", home), web.post("/", search_page),
            web.get("/children/{national_id}", child_page),
            web.post("/children/{national_id}", child_page)]
