"""``/review`` at a node: the council's index team decides the pairs of its own children
that may be one child, as ``local-node review accept|reject`` does on the command line
and with the same audit entries (``review.accept`` / ``review.reject``, the pair's local
ids as its children), the signed-in user as the actor and as ``decided_by``.

As at the hub: each pair in plain words ("Date of birth: same") with the model's
detail folded away, a count of pairs waiting, a confirmation page before a decision
(``GET /review/N?decision=accept``) and post/redirect/get after it (``/review?decided=N``,
a reload decides nothing). "Different children" can be undone (``POST /review/N/undo``:
the pair is asked again, audited as ``review.undo``); a merge cannot be undone from the
screen (the absorbed child is withdrawn from the hub at once), and the confirmation
says so.

Index team only. Reading the list shows children's identities, so it is audited first
(fail closed), with every local id on the page.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from local_node.handlers.appkeys import CONFIG, REVIEW
from local_node.services.review import Pair
from protocol.disclosure import Viewer
from protocol.errors import ErrorCode, SignpostError
from protocol.matching.words import described
from server_common import pages
from server_common.accounts import Role, principal, require_roles
from server_common.audit.entry import Actor
from server_common.web import read_form, whole_number

DECISIONS = {"accept": "the same child", "reject": "different children"}
CONSEQUENCES = {
    "accept": "The newer record will be merged into the older one and withdrawn from the "
              "national index. This cannot be undone from this screen.",
    "reject": "The two records will be kept apart, and you will not be asked about them "
              "again."}
STATUS_WORDS = {"accepted": "the same child", "rejected": "different children"}


def _day(value: Any) -> str:
    return f"{value.day} {value:%B %Y}" if value is not None else "Not known"


def _view(pair: Pair) -> dict[str, Any]:
    item = pair.item
    records = []
    for side, id_column in (("a", "local_id"), ("b", "candidate_id")):
        name = " ".join(n for n in (item[f"{side}_given"], item[f"{side}_family"]) if n)
        postcode = (item[f"{side}_postcode"] or "Not known") if pair.location_shown \
            else "withheld (shielded)"
        records.append({"heading": f"Child {item[id_column]}", "deleted": False, "rows": [
            ("Name", name or "Not known"), ("Date of birth", _day(item[f"{side}_dob"])),
            ("Postcode", postcode)]})
    return {"id": item["id"], "records": records, "shielded": pair.shielded,
            **described(pair.explanation)}


async def _audited_pairs(request: web.Request, action: str, only: int | None = None
                         ) -> list[Pair]:
    who = principal(request)
    return await request.app[REVIEW].looked_at(
        Actor(who.user, str(who.role), who.organisation), Viewer.of(who),
        request.app[CONFIG].council.code, action, only)


async def _list_page(request: web.Request, error: str = "", code: str = "",
                     status: int = 200) -> web.Response:
    pairs = await _audited_pairs(request, "review.queue")
    notice = None
    for kind in ("decided", "undone"):
        review_id = whole_number(request.query.get(kind, ""))
        if review_id is None:
            continue
        now = await request.app[REVIEW].status(review_id)
        if kind == "decided" and now in STATUS_WORDS:
            notice = {"id": str(review_id), "undo": now == "rejected",
                      "text": f"Pair {review_id} is recorded as {STATUS_WORDS[now]}."}
        elif kind == "undone" and now == "open":
            notice = {"id": str(review_id), "undo": False,
                      "text": f"Pair {review_id} is back in the list to decide."}
    return pages.render(request, "node_review.html", {
        "title": "Pairs to decide", "pairs": [_view(p) for p in pairs], "notice": notice,
        "error": {"text": error, "code": code} if error else None}, status=status)


@require_roles(Role.INDEX_TEAM)
async def review_page(request: web.Request) -> web.Response:
    return await _list_page(request)


@require_roles(Role.INDEX_TEAM)
async def confirm_page(request: web.Request) -> web.Response:
    review_id = int(request.match_info["item_id"])
    decision = request.query.get("decision", "")
    if decision not in DECISIONS:
        return await _list_page(request, "Choose whether the records are the same child "
                                "or different children.", str(ErrorCode.INVALID_FIELD), 400)
    pairs = await _audited_pairs(request, "review.pair", only=review_id)
    if not pairs:
        return await _list_page(request, f"Pair {review_id} is not waiting for a decision.",
                                str(ErrorCode.NOT_FOUND), 404)
    return pages.render(request, "review_confirm.html", {
        "title": f"Are these {DECISIONS[decision]}? Pair {review_id}",
        "pair": _view(pairs[0]), "decision": decision,
        "decision_words": DECISIONS[decision], "consequence": CONSEQUENCES[decision]})


@require_roles(Role.INDEX_TEAM)
async def decide(request: web.Request) -> web.Response:
    who = principal(request)
    review_id = int(request.match_info["item_id"])
    decision = (await read_form(request)).get("decision")
    if decision not in DECISIONS:
        return await _list_page(request, "Choose whether the records are the same child "
                                "or different children.", str(ErrorCode.INVALID_FIELD), 400)
    actor = Actor(who.user, str(who.role), who.organisation)
    service = request.app[REVIEW]
    try:
        if decision == "accept":
            await service.accept(review_id, who.user, actor=actor)
        else:
            await service.reject(review_id, who.user, actor=actor)
    except SignpostError as exc:
        if exc.code == ErrorCode.UNAVAILABLE:
            raise
        return await _list_page(request, exc.message, str(exc.code), exc.status)
    return _redirect(review_id, "decided")


@require_roles(Role.INDEX_TEAM)
async def undo(request: web.Request) -> web.Response:
    who = principal(request)
    review_id = int(request.match_info["item_id"])
    try:
        await request.app[REVIEW].undo_reject(
            review_id, who.user, actor=Actor(who.user, str(who.role), who.organisation))
    except SignpostError as exc:
        if exc.code == ErrorCode.UNAVAILABLE:
            raise
        return await _list_page(request, exc.message, str(exc.code), exc.status)
    return _redirect(review_id, "undone")


def _redirect(review_id: int, kind: str) -> web.Response:
    # 303: the browser fetches the list afresh; reloading it decides nothing
    return web.Response(status=303, headers={"Location": f"/review?{kind}={review_id}",
                                             "Cache-Control": "no-store"})


def routes() -> list[web.RouteDef]:
    return [web.get("/review", review_page),
            web.get(r"/review/{item_id:\d{1,18}}", confirm_page),
            web.post(r"/review/{item_id:\d{1,18}}", decide),
            web.post(r"/review/{item_id:\d{1,18}}/undo", undo)]
