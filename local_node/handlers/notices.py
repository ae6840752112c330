"""A practitioner's notices (docs/notices.md): the inbox, reading, watching a child.

JSON at ``/v1/notices``, ``/v1/notices/{id}/read`` and ``/v1/children/{local_id}/watch``
(PUT to watch, DELETE to stop); the same as pages at ``/notices``,
``/notices/{id}/read`` and ``/children/{local_id}/watch`` (a form; ``stop`` to stop).
Routing decided what each user sees (a shielded child's notices: index team only).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from local_node.services.notices import NoticeService
from protocol.errors import ValidationError
from protocol.records import is_local_id
from server_common import pages
from server_common.accounts.principal import CHILD_READERS
from server_common.accounts.web import principal, require_roles
from server_common.web import read_form, shown_json

NOTICES = web.AppKey("notices", NoticeService)
CHILD_PURPOSE = "a notice: another council or service is involved"
_WHAT = {"linked": "is now also involved", "new_involvement": "has a new service involved",
         "separated": "is no longer linked to this child"}


def _notice_id(request: web.Request) -> int:
    text = request.match_info["notice_id"]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValidationError("notice_id", "must be a notice number")
    return int(text)


def _local_id(request: web.Request) -> str:
    local_id = request.match_info["local_id"]
    if not is_local_id(local_id):
        raise ValidationError("local_id", "must be a local id")
    return local_id


@require_roles(*CHILD_READERS)
async def api_inbox(request: web.Request) -> web.Response:
    items = await request.app[NOTICES].inbox(principal(request))
    return shown_json({"notices": [i.to_dict() for i in items]})


@require_roles(*CHILD_READERS)
async def api_read(request: web.Request) -> web.Response:
    await request.app[NOTICES].read(principal(request), _notice_id(request))
    return web.json_response({"read": True})


@require_roles(*CHILD_READERS)
async def api_watch(request: web.Request) -> web.Response:
    on = request.method == "PUT"
    await request.app[NOTICES].watch(principal(request), _local_id(request), on)
    return web.json_response({"watching": on})


def _event_text(e: dict[str, Any]) -> str:
    """One event of a notice in words (the page escapes it)."""
    who = e.get("council_name") or e.get("council") or "Another council"
    text = f"{who} {_WHAT.get(e['kind'], e['kind'])}"
    if e.get("services"):
        text += f": {', '.join(e['services'])}"
    lead = e.get("lead_professional")
    if lead:
        parts = [lead.get("role"), lead.get("phone"), lead.get("email")]
        text += f". Lead professional: {' · '.join(p for p in parts if p)}"
    if e.get("contact"):
        teams = ", ".join(c["council"] for c in e["contact"])
        text += f". Shielded child: contact the index team of {teams}"
    return text


@require_roles(*CHILD_READERS)
async def page_inbox(request: web.Request) -> web.Response:
    who = principal(request)
    service = request.app[NOTICES]
    items = await service.inbox(who)
    return pages.render(request, "notices.html", {
        "title": "Notices", "purpose": CHILD_PURPOSE,
        "unread": sum(1 for i in items if not i.read),
        "items": [{"id": i.id, "read": i.read, "day": i.day, "local_ids": i.local_ids,
                   "said": [_event_text(e) for e in i.events]} for i in items],
        "watched": await service.watching(who)})


@require_roles(*CHILD_READERS)
async def page_read(request: web.Request) -> web.Response:
    await request.app[NOTICES].read(principal(request), _notice_id(request))
    raise web.HTTPSeeOther("/notices")


@require_roles(*CHILD_READERS)
async def page_watch(request: web.Request) -> web.Response:
    form = await read_form(request)
    await request.app[NOTICES].watch(principal(request), _local_id(request),
                                     not form.get("stop"))
    raise web.HTTPSeeOther("/notices")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/notices", api_inbox),
        web.post(r"/v1/notices/{notice_id}/read", api_read),
        web.put("/v1/children/{local_id}/watch", api_watch),
        web.delete("/v1/children/{local_id}/watch", api_watch),
        web.get("/notices", page_inbox),
        web.post(r"/notices/{notice_id}/read", page_read),
        web.post("/children/{local_id}/watch", page_watch),
    ]
