"""The look of the practitioner pages, the same on the hub and on every node:
one page shell (its style sheet ``/static/pages.css``, nothing from elsewhere,
strict CSP) and the search form.

    >>> form = search_form({}, None, action="/", csrf_token="t0ken")
    >>> "Purpose" in form, '<form method="post"' in form, 'value="t0ken"' in form
    (True, True, True)
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from aiohttp import web

from protocol.search import QUERY_FIELDS
from server_common.web import html_response

_LABELS = {"given_name": "Given name", "family_name": "Family name",
           "dob": "Date of birth (YYYY-MM-DD)", "postcode": "Postcode",
           "nhs_number": "NHS number", "upn": "UPN", "purpose": "Purpose"}


def page(title: str, body: str, status: int = 200) -> web.Response:
    """A whole page; never cached (it shows children's details)."""
    e = html.escape
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(title)}</title><link rel="icon" href="data:,">'
            '<link rel="stylesheet" href="/static/pages.css"></head>'
            f"<body>{body}</body></html>")
    return html_response(text, status)


def error_message(error: str | None, code: str | None = None) -> str:
    if not error:
        return ""
    return (f'<p class="error" role="alert" data-code="{html.escape(code or "")}">'
            f"{html.escape(error)}</p>")


def search_form(values: dict[str, str], error: str | None, *, action: str,
                csrf_token: str, code: str | None = None) -> str:
    """The search form, filled with ``values``; the purpose is required. It is sent by
    POST: names, dates of birth and NHS numbers stay out of addresses (browser history,
    proxies' logs), and the session's CSRF token goes with it."""
    e = html.escape
    inputs = "".join(
        f'<label>{e(label)} <input name="{name}" value="{e(values.get(name, ""))}"'
        f'{" required" if name == "purpose" else ""}></label>'
        for name, label in _LABELS.items())
    return (f'{error_message(error, code)}<form method="post" action="{e(action)}">'
            f'<input type="hidden" name="csrf_token" value="{e(csrf_token)}">{inputs}'
            "<button>Search</button></form>")


def query_values(request: web.Request) -> dict[str, str]:
    """The search fields and purpose as submitted (blank when absent)."""
    return form_values(request.query)


def form_values(submitted: Mapping[str, object]) -> dict[str, str]:
    """The search fields and purpose of a posted form (blank when absent; a file
    upload where text belongs counts as blank)."""
    out = {}
    for k in (*QUERY_FIELDS, "purpose"):
        value = submitted.get(k, "")
        out[k] = value if isinstance(value, str) else ""
    return out
