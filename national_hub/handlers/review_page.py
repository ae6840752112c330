"""``/review``: a council's index team decides the grey-zone pairs of national identity
resolution (docs/design.md §5), as ``national-hub review link|separate`` does on the command
line. Each pair shows both records and why the resolver could not decide: every
field's comparison level and weight, the total, the thresholds and the model version.

Only the ``index_team`` role, and only pairs with a record of its own council (the
review service refuses a third council's decision with 403 ``forbidden``, and a
separation of a shielded child by any council but the shielding one). A pair decided
earlier can be reversed by the same councils: ``POST /review/N`` with the other
decision; the page lists its council's decided pairs with that button. A pair with a
shielded record shows no postcode, district or location comparison of a record whose
location the viewer may not see (:mod:`protocol.disclosure`). Reading the queue shows
children's identities, so it is audited first (fail closed), with every child id on
the page; each decision is audited by the review service in its own transaction.
"""

from __future__ import annotations

import html
from typing import Any

import asyncpg
from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.services.review import RecordKey, ReviewRow
from protocol import identifiers
from protocol.disclosure import Viewer
from protocol.errors import ErrorCode, SignpostError
from server_common.accounts import Role, csrf_token, principal, require_roles
from server_common.accounts.pages import who_block
from server_common.audit.entry import Actor, AuditEntry
from server_common.practitioner_pages import error_message, page

SEX = {0: "not known", 1: "male", 2: "female", 9: "not specified"}
DECISIONS = {"link": "the same child", "separate": "different children"}


def _record(key: RecordKey, row: asyncpg.Record | None, own: str, names: dict[str, str]
            ) -> str:
    e = html.escape
    council = f"{names.get(key[0], key[0])} ({key[0]}) · {key[1]}"
    if row is None:
        return f"<td>{e(council)}<br><em>deleted since it was queued</em></td>"
    # the identity columns mask a shielded record's postcode (matching never reads it);
    # its own council's index team still sees it as held
    where = (row["held_postcode"] if key[0] == own else row["postcode"]) or "–"
    if row["shielded"] and key[0] != own:
        where = "withheld (shielded)"  # where a shielded child lives stays with its council
    elif key[0] != own and row["postcode"]:
        where = identifiers.postcode_district(row["postcode"]) or "–"
    former = ", ".join(row["former_family_names"] or [])
    lines = [
        f"<strong>{e(row['given_name'] or '–')} {e(row['family_name'] or '–')}</strong>"
        + (f" (formerly {e(former)})" if former else ""),
        f"born {row['dob'].isoformat() if row['dob'] else 'not known'} · "
        f"{SEX.get(row['sex'], str(row['sex']))}",
        f"NHS {e(row['nhs_number'] or '–')} · UPN {e(row['upn'] or '–')}",
        f"postcode {e(where)}",
    ]
    return f"<td>{e(council)}<br>{'<br>'.join(lines)}</td>"


def _why(explanation: dict[str, Any]) -> str:
    e = html.escape
    fields = "".join(
        f"<tr><td>{e(str(f.get('field')))}</td><td>{e(str(f.get('level')))}</td>"
        f"<td class=\"num\">{float(f.get('weight', 0)):+.2f}</td></tr>"
        for f in explanation.get("fields", []))
    thresholds = explanation.get("thresholds", {})
    veto = explanation.get("veto")
    return (f'<table class="why"><tr><th>Field</th><th>Level</th><th>Weight</th></tr>{fields}'
            f"</table><p>Total <strong>{float(explanation.get('total', 0)):+.2f}</strong>"
            f" (link at ≥ {thresholds.get('link', '?')}, review at ≥ "
            f"{thresholds.get('review', '?')}) · model {e(str(explanation.get('model_version')))}"
            + (f" · held back by the rule <em>{e(str(veto))}</em>" if veto else "") + "</p>")


def _item(review: ReviewRow, rows: dict[RecordKey, asyncpg.Record], own: str,
          names: dict[str, str], csrf: str, explanation: dict[str, Any]) -> str:
    buttons = "".join(
        f'<button name="decision" value="{d}">{html.escape(label.capitalize())}</button> '
        for d, label in DECISIONS.items())
    return (f'<section class="review" data-review="{review.id}"><h2>Pair {review.id}</h2>'
            f"<table><tr>{_record(review.a, rows.get(review.a), own, names)}"
            f"{_record(review.b, rows.get(review.b), own, names)}</tr></table>"
            f"{_why(explanation)}"
            f'<form method="post" action="/review/{review.id}">'
            f'<input type="hidden" name="csrf_token" value="{html.escape(csrf)}">'
            f"{buttons}</form></section>")


def _decided(review: ReviewRow, csrf: str) -> str:
    """A decided pair of this council, with the button that reverses the decision."""
    e = html.escape
    other = "separate" if review.status == "linked" else "link"
    return (f'<tr data-review="{review.id}"><td>Pair {review.id}</td>'
            f"<td>{e('/'.join(review.a))} · {e('/'.join(review.b))}</td>"
            f"<td>{e(review.status)} by {e(review.decided_by or '–')}</td><td>"
            f'<form method="post" action="/review/{review.id}">'
            f'<input type="hidden" name="csrf_token" value="{e(csrf)}">'
            f'<button name="decision" value="{other}">Reverse: '
            f"{e(DECISIONS[other])}</button></form></td></tr>")


async def _queue_page(request: web.Request, notice: str = "", error: str = "",
                      code: str = "", status: int = 200) -> web.Response:
    who = principal(request)
    own = who.council or ""
    service = request.app[k.REVIEW]
    queue = await service.queue_for(own, Viewer.of(who))
    decided = await service.decided_for(own)
    national_ids = sorted({r["national_id"] for _, rows, _ in queue for r in rows.values()
                           if r["national_id"]})
    await request.app[k.AUDIT].record(AuditEntry(
        who.user, str(who.role), who.organisation, purpose="identity resolution review",
        action="review.queue", parameters={"council": own}, child_ids=tuple(national_ids)))
    names = await request.app[k.COUNCILS].names()
    csrf = csrf_token(request)
    items = "".join(_item(r, rows, own, names, csrf, why) for r, rows, why in queue)
    reversible = "".join(_decided(r, csrf) for r in decided)
    body = (f"<header>{who_block(who, csrf)}</header>"
            f"<h1>Pairs to decide – {html.escape(names.get(own, own))}</h1>"
            + (f'<p class="notice" role="status">{html.escape(notice)}</p>' if notice else "")
            + error_message(error, code)
            + (items or '<p id="empty">Nothing to decide.</p>')
            + ('<h2>Decided pairs</h2><table id="decided"><tr><th>Pair</th><th>Records</th>'
               f"<th>Decision</th><th></th></tr>{reversible}</table>" if reversible else ""))
    return page("Review", body, status)


@require_roles(Role.INDEX_TEAM)
async def review_page(request: web.Request) -> web.Response:
    return await _queue_page(request)


@require_roles(Role.INDEX_TEAM)
async def decide(request: web.Request) -> web.Response:
    who = principal(request)
    form = await request.post()
    decision = form.get("decision")
    try:
        review_id = int(request.match_info["review_id"])
        if decision not in DECISIONS:
            raise SignpostError("decision: choose link or separate",
                                code=ErrorCode.INVALID_FIELD)
        actor = Actor(who.user, str(who.role), who.organisation)
        service = request.app[k.REVIEW]
        # who may decide is the review service's rule (the command line's too)
        decided = await (service.link(review_id, actor, Viewer.of(who)) if decision == "link"
                         else service.separate(review_id, actor, Viewer.of(who)))
    except ValueError:
        return await _queue_page(request, error="no such pair", code="not_found", status=404)
    except SignpostError as exc:
        if exc.code == ErrorCode.UNAVAILABLE:
            raise
        return await _queue_page(request, error=exc.message, code=str(exc.code),
                                 status=exc.status)
    notice = (f"Pair {review_id}: recorded as {DECISIONS[str(decision)]} "
              f"({' and '.join(sorted(set(decided.national_ids)))}).")
    return await _queue_page(request, notice=notice)


def routes() -> list[web.RouteDef]:
    return [web.get("/review", review_page),
            web.post(r"/review/{review_id:\d+}", decide)]
