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
from national_hub.services.search import ChildHit, Redirect
from protocol.errors import SignpostError, ValidationError
from protocol.search import QUERY_FIELDS, parse_purpose
from server_common import pages
from server_common.accounts import csrf_token, principal, require_roles
from server_common.accounts.pages import who_block
from server_common.accounts.principal import CHILD_READERS
from server_common.practitioner_pages import error_message, page, search_form

SERVICE = "Signpost national hub"
SEX = {0: "not known", 1: "male", 2: "female", 9: "not specified"}
e = html.escape


def _header(request: web.Request) -> str:
    return f"<header>{who_block(principal(request), csrf_token(request))}</header>"


def _contact(contact: list[dict[str, str]]) -> str:
    teams = " and ".join(f"<strong>{e(c['name'])}</strong>" for c in contact)
    return f"contact the index team of {teams}"


def _open_child(national_id: str, label: str, purpose: str, csrf: str) -> str:
    """A button that opens the child with the purpose in the body, not the address."""
    return (f'<form method="post" action="/children/{e(national_id)}" class="open">'
            f'<input type="hidden" name="csrf_token" value="{e(csrf)}">'
            f'<input type="hidden" name="purpose" value="{e(purpose)}">'
            f"<button>{e(label)}</button></form>")


def _result(hit: ChildHit, purpose: str, csrf: str) -> str:
    h = hit.to_dict()
    if hit.shielded:
        where = f'<span class="shielded">Shielded – {_contact(h["contact"])}</span>'
    else:
        where = ", ".join(f"{e(c['name'])} ({e(c['postcode_district'] or '–')})"
                          for c in h["councils"])
    opener = _open_child(hit.national_id, f"{hit.given_name or '–'} {hit.family_name or '–'}",
                         purpose, csrf)
    return (f"<tr><td>{opener}</td>"
            f"<td>{e(h['dob'] or 'not known')}</td><td>{e(SEX.get(hit.sex, '–'))}</td>"
            f"<td>{where}</td>"
            f"<td>{hit.confidence:.0%}</td></tr>")


TITLE = "<h1>Find a child – every council</h1>"


@require_roles()
async def home(request: web.Request) -> web.Response:
    """The search page for practitioners and index teams (a search by query string
    from an old bookmark still runs); the landing page for others."""
    header = _header(request)
    if principal(request).role not in CHILD_READERS:  # links to their pages (the nav's)
        return pages.render(request, "landing.html")
    values = {k: request.query.get(k, "") for k in (*QUERY_FIELDS, "purpose")}
    if not any(values[k] for k in QUERY_FIELDS):
        return page("Find a child", header + TITLE + search_form(
            values, None, action="/", csrf_token=csrf_token(request)))
    return await _results(request, values)


@require_roles(*CHILD_READERS)
async def search_page(request: web.Request) -> web.Response:
    """``POST /``: the search, from the form's fields."""
    form = await request.post()
    return await _results(request, {k: v if isinstance(v := form.get(k, ""), str) else ""
                                    for k in (*QUERY_FIELDS, "purpose")})


async def _results(request: web.Request, values: dict[str, str]) -> web.Response:
    header, csrf = _header(request), csrf_token(request)
    try:
        purpose, hits = await search(request, values)
    except SignpostError as exc:  # bad input, or no audit: the form again, nothing shown
        return page("Find a child", header + TITLE + search_form(
            values, exc.message, action="/", csrf_token=csrf, code=str(exc.code)), exc.status)
    rows = "".join(_result(h, purpose, csrf) for h in hits)
    table = ("<table><tr><th>Name</th><th>Born</th><th>Sex</th><th>Councils involved</th>"
             f"<th>Confidence</th></tr>{rows}</table>" if hits else "<p>No child matches.</p>")
    return page("Find a child", header + TITLE + search_form(
        values, None, action="/", csrf_token=csrf) + table)


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
        form = await request.post()
        fields = {"purpose": p if isinstance(p := form.get("purpose", ""), str) else ""}
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
