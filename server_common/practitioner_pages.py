"""The look of the practitioner pages, the same on the hub and on every node:
one page shell (inline style, no external assets, strict CSP) and the search form.
The form is posted: names, dates of birth and NHS numbers stay out of URLs (browser
history, proxy and server logs).

    >>> form = search_form({}, None, action="/", csrf_token="t0k")
    >>> '<form method="post"' in form and 'name="csrf_token" value="t0k"' in form
    True
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from aiohttp import web

from protocol.search import QUERY_FIELDS
from server_common.web import html_response

STYLE = ("body{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem}"
         "label{display:inline-block;margin:.3rem .6rem .3rem 0}input{padding:.3rem}"
         "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ccc;"
         "padding:.3rem;text-align:left}.error{color:#a00;font-weight:bold}"
         ".notice{border-left:.3rem solid #a60;padding:.3rem .8rem;background:#fff6e5}"
         "dl{display:flex;flex-wrap:wrap;gap:0 1rem;margin:.3rem 0}dt{font-weight:bold}"
         "dd{margin:0 1rem 0 0}header{display:flex;justify-content:space-between;"
         "align-items:center;flex-wrap:wrap;gap:.5rem;font-size:.9rem}"
         "header p{margin:0}header form{margin:0}")

_LABELS = {"given_name": "Given name", "family_name": "Family name",
           "dob": "Date of birth (YYYY-MM-DD)", "postcode": "Postcode",
           "nhs_number": "NHS number", "upn": "UPN", "purpose": "Purpose"}


def page(title: str, body: str, status: int = 200) -> web.Response:
    """A whole page; never cached (it shows children's details)."""
    e = html.escape
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>")
    return html_response(text, status)


def error_message(error: str | None, code: str | None = None) -> str:
    if not error:
        return ""
    return (f'<p class="error" role="alert" data-code="{html.escape(code or "")}">'
            f"{html.escape(error)}</p>")


def search_form(values: dict[str, str], error: str | None, *, action: str, csrf_token: str,
                code: str | None = None) -> str:
    """The search form, filled with ``values``; the purpose is required. Posted, with
    the session's CSRF token."""
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
