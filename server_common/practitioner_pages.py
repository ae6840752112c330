"""The old page shell, for the pages not yet on the templates (the hub's review page
and the audit page): one page with its style sheet ``/static/pages.css`` and a
one-line error. New pages are templates (``server_common.pages``); the search form
is ``server_common.search_form`` and ``templates/search_form.html``.

    >>> "pages.css" in page("Review", "<h1>Review</h1>").text
    True
"""

from __future__ import annotations

import html

from aiohttp import web

from server_common.web import html_response


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
