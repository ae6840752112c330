"""Who is signed in, as a block of HTML, for the pages not yet on the templates (the
review and audit pages). The login and landing pages are templates
(server_common/templates/login.html, landing.html; server_common.pages)."""

from __future__ import annotations

import html

from server_common.accounts.principal import Principal


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
