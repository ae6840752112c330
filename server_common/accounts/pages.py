"""The few server-rendered pages of logging in: minimal HTML; its style sheet is
``/static/login.css`` (server_common/static), so the CSP needs no inline style."""

from __future__ import annotations

import html

from server_common.accounts.principal import Principal


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title>"
            '<link rel="icon" href="data:,">'  # no /favicon.ico request: nothing to find
            '<link rel="stylesheet" href="/static/login.css"></head>'
            f"<body>{body}</body></html>")


def login_page(service: str, csrf: str, next_path: str, name: str = "",
               error: str | None = None, code: str | None = None) -> str:
    e = html.escape
    message = (f'<p class="error" role="alert" data-code="{e(code or "")}">{e(error)}</p>'
               if error else "")
    return _page(f"Sign in – {service}", (
        f"<h1>Sign in to {e(service)}</h1>{message}"
        '<form method="post" action="/login" autocomplete="off">'
        f'<input type="hidden" name="csrf_token" value="{e(csrf)}">'
        f'<input type="hidden" name="next" value="{e(next_path)}">'
        '<label for="name">User name</label>'
        f'<input id="name" name="name" value="{e(name)}" required autofocus>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" required>'
        '<label for="totp">Code from your authenticator app</label>'
        '<input id="totp" name="totp" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" '
        'required autocomplete="one-time-code">'
        '<button type="submit">Sign in</button></form>'))


def who_block(who: Principal, csrf: str) -> str:
    """Who is signed in, and the sign-out button: on the landing page and on every
    page a signed-in user starts from (the hub's search page, say)."""
    e = html.escape
    rows = [("User", who.user), ("Role", str(who.role)),
            ("Organisation", who.organisation or "–")]
    if who.council:
        rows.append(("Council", who.council))
    details = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rows)
    return (f'<p id="who">Signed in as <strong>{e(who.user)}</strong> ({e(str(who.role))})</p>'
            f"<dl>{details}</dl>"
            '<form method="post" action="/logout">'
            f'<input type="hidden" name="csrf_token" value="{e(csrf)}">'
            '<button type="submit">Sign out</button></form>')


def landing_page(service: str, who: Principal, csrf: str) -> str:
    return _page(service, f"<h1>{html.escape(service)}</h1>{who_block(who, csrf)}")
