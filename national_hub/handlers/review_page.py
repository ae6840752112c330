"""``/review``: a council's index team decides the grey-zone pairs of national identity
resolution (docs/design.md §5), as ``national-hub review link|separate`` does on the command
line. Each pair shows both records and how they compare in plain words ("Date of
birth: same", "Postcode: same area"); the model's levels, weights and thresholds are
folded away beneath. A count says how many pairs wait.

A decision is asked twice: the pair's buttons lead to a confirmation page
(``GET /review/N?decision=link``), whose form posts it (``POST /review/N``); the answer
is a redirect to ``/review?decided=N`` (post/redirect/get: a reload never decides
again), which says what was recorded and offers **Undo** (``POST /review/N/undo``:
the pair goes back in the queue, apart, audited as ``review.undo``). The decided pairs
listed below the queue can be undone too, or decided the other way by posting.

A pair whose link would make one child of two whose records hold different NHS
numbers or pupil numbers says so (a warning naming the kinds, never the values), and
its link needs a ticked confirmation: without it the confirmation page comes back
with an error summary (409 ``identifier_conflict``), nothing decided.

Only the ``index_team`` role, and only pairs with a record of its own council (the
review service refuses a third council's decision with 403 ``forbidden``, and a
separation of a shielded child by any council but the shielding one). A pair with a
shielded record shows no postcode, district or location comparison of a record whose
location the viewer may not see (:mod:`protocol.disclosure`). Reading pairs shows
children's identities, so it is audited first (fail closed), with every child id on
the page; each decision is audited by the review service in its own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from aiohttp import web

from national_hub.handlers import appkeys as k
from national_hub.services.review import RecordKey, ReviewRow, Shown
from protocol import identifiers
from protocol.disclosure import Viewer
from protocol.errors import ErrorCode, NotFoundError, SignpostError
from protocol.matching.words import conflict_in_words, described
from server_common import pages
from server_common.accounts import Role, principal, require_roles
from server_common.audit.entry import Actor, AuditEntry
from server_common.web import read_form, whole_number

SEX = {0: "Not known", 1: "Male", 2: "Female", 9: "Not specified"}
DECISIONS = {"link": "the same child", "separate": "different children"}
CONSEQUENCES = {
    "link": "Both records will be one child at the national index, for every council. "
            "You can undo this straight afterwards.",
    "separate": "The two records will be kept apart, and never joined automatically. "
                "You can undo this straight afterwards."}
STATUS_WORDS = {"linked": "the same child", "separated": "different children"}
PURPOSE = "identity resolution review"
CONFIRM_CONFLICT = "confirm_identifier_conflict"  # the link form's checkbox: "yes" when ticked
CONFIRM_ERROR = "Confirm that you have checked these records are the same child"


def _day(value: Any) -> str:
    return f"{value.day} {value:%B %Y}" if value is not None else "Not known"


def _record(key: RecordKey, row: asyncpg.Record | None, own: str,
            names: dict[str, str], shown: Shown) -> dict[str, Any]:
    heading = _heading(key, names, shown)
    if row is None:
        return {"heading": heading, "deleted": True, "rows": []}
    # the identity columns mask a shielded record's postcode (matching never reads it);
    # its own council's index team still sees it as held
    where = (row["held_postcode"] if key[0] == own else row["postcode"]) or "Not known"
    if row["shielded"] and key[0] != own:
        where = "withheld (shielded)"  # where a shielded child lives stays with its council
    elif key[0] != own and row["postcode"]:
        where = (identifiers.postcode_district(row["postcode"]) or "Not known") + " (district)"
    former = ", ".join(row["former_family_names"] or [])
    name = " ".join(n for n in (row["given_name"], row["family_name"]) if n) or "Not known"
    return {"heading": heading, "deleted": False, "rows": [
        ("Name", name + (f" (formerly {former})" if former else "")),
        ("Date of birth", _day(row["dob"])), ("Sex", SEX.get(row["sex"], "Not known")),
        ("NHS number", row["nhs_number"] or "Not known"),
        # a UPN's first digits name the authority that issued it: where the child was
        ("Unique pupil number", "withheld (shielded)" if row["shielded"] and key[0] != own
         else row["upn"] or "Not known"), ("Postcode", where)]}


def _heading(key: RecordKey, names: dict[str, str], shown: Shown) -> str:
    """"West Sussex, record W1", or less: another council's local id of a shielded child
    is for whoever may see the councils that know it, and which council holds it for them
    and for the council that shields it (protocol.disclosure)."""
    council = names.get(key[0], key[0]) if key in shown.councils else "Another council"
    return f"{council}, " + (f"record {key[1]}" if key in shown.local_ids
                             else "record withheld (shielded)")


def _pair(review: ReviewRow, rows: dict[RecordKey, asyncpg.Record], own: str,
          names: dict[str, str], explanation: dict[str, Any],
          shown: Shown, conflict: Sequence[str] = ()) -> dict[str, Any]:
    return {"id": review.id,
            "records": [_record(key, rows.get(key), own, names, shown)
                        for key in (review.a, review.b)],
            # which kinds of identifier differ, not whose: no council, record or value
            "conflict": conflict_in_words(conflict) if conflict else None,
            **described(explanation)}


async def _audited_look(request: web.Request, action: str, queue: Sequence[tuple[
        ReviewRow, dict[RecordKey, asyncpg.Record], dict[str, Any]]]) -> None:
    who = principal(request)
    national_ids = sorted({r["national_id"] for _, rows, _ in queue for r in rows.values()
                           if r["national_id"]})
    await request.app[k.AUDIT].record(AuditEntry(
        who.user, str(who.role), who.organisation, purpose=PURPOSE, action=action,
        parameters={"council": who.council or "",
                    "reviews": [r.id for r, _, _ in queue]},
        child_ids=tuple(national_ids)))


async def _notice(request: web.Request, own: str) -> dict[str, Any] | None:
    """What the redirect after a decision (``?decided=N``) or an undo (``?undone=N``)
    says, read from the pair as it now stands (the address is only a pointer)."""
    for kind in ("decided", "undone"):
        review_id = whole_number(request.query.get(kind, ""))
        if review_id is None:
            continue
        try:
            review = await request.app[k.REVIEW].get(review_id)
        except NotFoundError:
            return None
        if own not in (review.a[0], review.b[0]):
            return None
        if kind == "decided" and review.status in STATUS_WORDS:
            return {"id": review.id, "kind": kind, "undo": True,
                    "text": f"Pair {review.id} is recorded as {STATUS_WORDS[review.status]}."}
        if kind == "undone" and review.status == "open":
            return {"id": review.id, "kind": kind, "undo": False,
                    "text": f"Pair {review.id} is back in the list to decide."}
    return None


async def _queue_page(request: web.Request, error: str = "", code: str = "",
                      status: int = 200) -> web.Response:
    who = principal(request)
    own = who.council or ""
    service = request.app[k.REVIEW]
    queue = await service.queue_for(own, Viewer.of(who))
    await _audited_look(request, "review.queue", queue)
    names = await request.app[k.COUNCILS].names()
    decided = await service.decided_for(own)
    shown = await service.shown_of([*(r for r, _, _ in queue), *decided], Viewer.of(who))
    conflicts = await service.conflicts([r for r, _, _ in queue])
    return pages.render(request, "review.html", {
        "title": "Pairs to decide" + (" (error)" if error else ""),
        "council": names.get(own, own),
        "waiting": await service.waiting(own),
        "pairs": [_pair(r, rows, own, names, why, shown, conflicts.get(r.id, ()))
                  for r, rows, why in queue],
        "decided": [{"id": r.id, "status": STATUS_WORDS.get(r.status, r.status),
                     # who decided may name a council the viewer may not see
                     "by": (r.decided_by or "Not recorded")
                     if {r.a, r.b} <= shown.councils else "withheld (shielded)",
                     "records": [_heading(key, names, shown) for key in (r.a, r.b)]}
                    for r in decided],
        "notice": await _notice(request, own),
        "error": {"text": error, "code": code} if error else None,
    }, status=status)


@require_roles(Role.INDEX_TEAM)
async def review_page(request: web.Request) -> web.Response:
    return await _queue_page(request)


@require_roles(Role.INDEX_TEAM)
async def confirm_page(request: web.Request) -> web.Response:
    """"Are you sure?": the pair again, and the form that records the decision."""
    decision = request.query.get("decision", "")
    if decision not in DECISIONS:
        return await _queue_page(request, error="Choose whether the records are the same "
                                 "child or different children.",
                                 code=str(ErrorCode.INVALID_FIELD), status=400)
    return await _confirm_page(request, int(request.match_info["review_id"]), decision)


async def _confirm_page(request: web.Request, review_id: int, decision: str,
                        refused: SignpostError | None = None) -> web.Response:
    """The confirmation page, or again with the error summary when a link of children
    holding different identifiers was posted unconfirmed (``refused``)."""
    who = principal(request)
    own = who.council or ""
    service = request.app[k.REVIEW]
    queue = [q for q in await service.queue_for(own, Viewer.of(who)) if q[0].id == review_id]
    if not queue:
        if refused is not None:  # a decided pair posted the other way: the list says why
            return await _queue_page(request, error=refused.message, code=str(refused.code),
                                     status=refused.status)
        return await _queue_page(request, error=f"Pair {review_id} is not waiting for "
                                 "your council's decision.", code=str(ErrorCode.NOT_FOUND),
                                 status=404)
    await _audited_look(request, "review.pair", queue)
    names = await request.app[k.COUNCILS].names()
    (review, rows, why), = queue
    shown = await service.shown_of([review], Viewer.of(who))
    conflict = (await service.conflicts([review])).get(review.id, ())
    pair = _pair(review, rows, own, names, why, shown, conflict)
    errors = [{"text": CONFIRM_ERROR, "href": "#" + CONFIRM_CONFLICT}
              ] if refused is not None and conflict else []
    return pages.render(request, "review_confirm.html", {
        "title": f"Are these {DECISIONS[decision]}? Pair {review_id}",
        "pair": pair, "decision": decision, "decision_words": DECISIONS[decision],
        "consequence": CONSEQUENCES[decision],
        # a link of two children holding different identifiers is ticked as checked
        "confirm_conflict": decision == "link" and bool(conflict),
        "errors": errors, "error_code": str(refused.code) if refused else None},
        status=refused.status if refused is not None else 200)


def _decided_at(review_id: int, kind: str) -> web.Response:
    # 303: the browser fetches the queue afresh; reloading it decides nothing
    return web.Response(status=303, headers={"Location": f"/review?{kind}={review_id}",
                                             "Cache-Control": "no-store"})


@require_roles(Role.INDEX_TEAM)
async def decide(request: web.Request) -> web.Response:
    who = principal(request)
    form = await read_form(request)
    decision = form.get("decision")
    review_id = int(request.match_info["review_id"])
    if decision not in DECISIONS:
        return await _queue_page(request, error="Choose whether the records are the same "
                                 "child or different children.",
                                 code=str(ErrorCode.INVALID_FIELD), status=400)
    actor = Actor(who.user, str(who.role), who.organisation)
    service = request.app[k.REVIEW]
    try:
        # who may decide is the review service's rule (the command line's too)
        await (service.link(review_id, actor, Viewer.of(who),
                            identifier_conflict_confirmed=form.get(CONFIRM_CONFLICT) == "yes")
               if decision == "link" else service.separate(review_id, actor, Viewer.of(who)))
    except SignpostError as exc:
        if exc.code == ErrorCode.UNAVAILABLE:
            raise
        if exc.code == ErrorCode.IDENTIFIER_CONFLICT:
            return await _confirm_page(request, review_id, "link", refused=exc)
        return await _queue_page(request, error=exc.message, code=str(exc.code),
                                 status=exc.status)
    return _decided_at(review_id, "decided")


@require_roles(Role.INDEX_TEAM)
async def undo(request: web.Request) -> web.Response:
    who = principal(request)
    review_id = int(request.match_info["review_id"])
    try:
        await request.app[k.REVIEW].undo(
            review_id, Actor(who.user, str(who.role), who.organisation), Viewer.of(who))
    except SignpostError as exc:
        if exc.code == ErrorCode.UNAVAILABLE:
            raise
        return await _queue_page(request, error=exc.message, code=str(exc.code),
                                 status=exc.status)
    return _decided_at(review_id, "undone")


def routes() -> list[web.RouteDef]:
    return [web.get("/review", review_page),
            web.get(r"/review/{review_id:\d{1,18}}", confirm_page),
            web.post(r"/review/{review_id:\d{1,18}}", decide),
            web.post(r"/review/{review_id:\d{1,18}}/undo", undo)]
