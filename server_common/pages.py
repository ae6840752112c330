"""How every page is made, at the hub and at every node: Jinja2 templates, autoescaped,
built on GOV.UK Frontend (its CSS and JavaScript vendored in ``static/govuk/`` by
``make frontend``; its component macros from govuk-frontend-jinja).

One shell for every page (``templates/base.html``): a skip link, the service's own
header (the service name, who is signed in and in which role, sign out: no crown and
no GDS Transport, which are for GOV.UK services only), the navigation for that role,
``<main>``, a footer, and a title that says where you are ("Search – Signpost hub",
"Error: Search – …" when the page shows errors).

Wiring, once in ``create_app``::

    pages.setup(app, service="Signpost hub", package="national_hub", nav=HUB_NAV)

and in a handler::

    return pages.render(request, "search.html", {"title": "Search", ...}, status=400)

The context always holds ``service``, ``title``, ``who`` (the Principal, or None),
``role_name``, ``nav`` (this role's items, the current one marked), ``csrf`` (for every
form) and ``errors`` (a list of :class:`FieldError`, shown as the error summary at the
top of ``<main>``, each linked to its field).

Templates are found in the app's own package (``national_hub/templates``), then here
(``server_common/templates``: base, error, login, landing), then GOV.UK's macros as
``govuk_frontend_jinja/components/<name>/macro.html``.

Browsers get HTML error pages (:func:`error_page`, hooked into the one error
middleware); API clients keep the JSON errors (:func:`wants_html` decides).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
import markupsafe
from aiohttp import web

from protocol import hidden_text
from server_common import child_pages, display
from server_common.accounts.principal import CSRF, PRINCIPAL, Principal, Role
from server_common.web import ERROR_PAGE

ROLE_NAMES = {Role.PRACTITIONER: "Practitioner", Role.INDEX_TEAM: "Index team",
              Role.OPERATOR: "Operator", Role.AUDITOR: "Auditor"}

# A child's page is titled this, never with the child's name (its heading has it):
# browser history, tab titles and window lists keep a page's title.
CHILD_TITLE = "Child record"

NavItem = tuple[str, str]  # (path, text)
Nav = Mapping[Role, Sequence[NavItem]]


@dataclass(frozen=True, slots=True)
class Site:
    """The service's name and each role's navigation."""

    service: str
    nav: Nav = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One error on a form: the plain-English ``text`` shown in the error summary and
    by the field, and the ``field`` id the summary links to."""

    field: str
    text: str

    @property
    def href(self) -> str:
        return f"#{self.field}"


SITE = web.AppKey("site", Site)


def loader(package: str | None) -> jinja2.BaseLoader:
    """The app's templates, then the shared ones, then GOV.UK's macros."""
    loaders: list[jinja2.BaseLoader] = []
    if package:
        loaders.append(jinja2.PackageLoader(package, "templates"))
    loaders.append(jinja2.PackageLoader("server_common", "templates"))
    loaders.append(jinja2.PrefixLoader({
        "govuk_frontend_jinja": jinja2.PackageLoader("govuk_frontend_jinja", "templates")}))
    return jinja2.ChoiceLoader(loaders)


def setup(app: web.Application, *, service: str, package: str | None = None,
          nav: Nav | None = None) -> None:
    """Give ``app`` its templates (autoescape on), its name and its navigation, and
    answer browsers' errors with pages."""
    aiohttp_jinja2.setup(app, loader=loader(package), autoescape=True,
                         undefined=jinja2.ChainableUndefined,  # GOV.UK's macros test params.x.y
                         default_helpers=False, trim_blocks=True, lstrip_blocks=True,
                         filters=FILTERS, finalize=_shown)
    app[SITE] = Site(service, nav or {})
    app[ERROR_PAGE] = error_page


def _shown(value: Any) -> Any:
    """Every value a template writes: a character that would change how the text
    around it displays unseen (a right-to-left override in a name stored before intake
    refused them, protocol.hidden_text) is shown as U+FFFD, so no name reads as another.

    >>> _shown("Ahmed\u202edemhA"), _shown(markupsafe.Markup("<b>A\u2066</b>"))
    ('Ahmed\ufffddemhA', Markup('<b>A\ufffd</b>'))
    """
    if isinstance(value, markupsafe.Markup):
        return markupsafe.Markup(hidden_text.reveal(str(value)))
    return hidden_text.reveal(value) if isinstance(value, str) else value


def _nav(request: web.Request, site: Site, who: Principal | None) -> list[dict[str, Any]]:
    if who is None:
        return []
    items = site.nav.get(who.role, ())
    # the deepest item that holds this path is the current one ("/" only for "/")
    here = max((path for path, _ in items
                if request.path == path or (path != "/" and request.path.startswith(path))),
               key=len, default=None)
    return [{"href": path, "text": text, "current": path == here} for path, text in items]


def context(request: web.Request, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What every template is given, then ``values`` (which win)."""
    site = request.config_dict[SITE]
    who = request.get(PRINCIPAL)
    out: dict[str, Any] = {
        "service": site.service, "title": site.service, "who": who,
        "role_name": ROLE_NAMES.get(who.role, str(who.role)) if who else "",
        "nav": _nav(request, site, who), "csrf": request.get(CSRF, ""), "errors": [],
        "path": request.path, "error_code": None}
    out.update(values or {})
    return out


def render(request: web.Request, template: str, values: Mapping[str, Any] | None = None,
           *, status: int = 200) -> web.Response:
    """A whole page. Never cached, never framed, strict CSP: server_common.headers."""
    return aiohttp_jinja2.render_template(template, request, context(request, values),
                                          status=status)


def wants_html(request: web.Request) -> bool:
    """A browser asking for a page, not an API client: no bearer token, not under
    ``/v1/``, and ``text/html`` in Accept (an API client's ``*/*`` keeps JSON)."""
    return ("Authorization" not in request.headers and not request.path.startswith("/v1/")
            and "text/html" in request.headers.get("Accept", ""))


# What each refusal tells a person, in plain words (the JSON message is for programs).
_ERROR_PAGES = {
    403: ("You cannot see this page",
          "Your role does not give access to this page. If you need it, ask your "
          "service administrator."),
    404: ("Page not found",
          "If you typed the web address, check it is correct. If you followed a link "
          "or a bookmark, the page may have moved: start from the home page."),
    405: ("Page not found", "This page cannot be reached in this way."),
    413: ("What you sent is too large", "Go back, send less and try again."),
    429: ("Too many requests", "Wait a minute, then try again."),
    503: ("Sorry, the service is unavailable", "Try again in a few minutes."),
}
_SERVER_ERROR = ("Sorry, there is a problem with the service", "Try again later.")
# Any other refusal: its JSON message names fields as programs do, so not shown here.
_REFUSED = ("Sorry, that did not work", "Go back, check what you entered and try again.")


def error_page(request: web.Request, status: int, code: str,
               message: str) -> web.StreamResponse | None:
    """A browser's error as a page; None for an API client (its JSON stands). Not
    signed in, or the session expired: to the sign-in page, and back here after."""
    if not wants_html(request) or SITE not in request.config_dict:
        return None
    if status == 401:  # the path only: a query may hold a search's names
        return web.Response(status=303, headers={
            "Location": "/login?next=" + quote(request.path, safe="/")})
    title, advice = _ERROR_PAGES.get(status, _SERVER_ERROR if status >= 500 else _REFUSED)
    if code == "csrf_failed":
        title, advice = ("This form has expired", "Go back, reload the page and try again.")
    if status == 403 and (who := request.get(PRINCIPAL)) is not None and code == "forbidden":
        advice = (f"You are signed in as {ROLE_NAMES.get(who.role, who.role)}, and this "
                  f"page is for other roles. If you need it, ask your service administrator.")
    return render(request, "error.html", {"title": title, "advice": advice, "code": code,
                                          "status": status}, status=status)


FILTERS: dict[str, Callable[..., Any]] = {
    "name_case": display.name_case, "long_date": display.long_date,
    "match_strength": display.match_strength, "service_words": child_pages.service_words,
    "service_dates": child_pages.service_dates, "open_first": child_pages.open_first,
    "current_first": child_pages.current_first}
