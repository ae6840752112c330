"""``/audit``: the auditor's page, the same at hub and node (docs/design.md §6, docs/audit.md).

What an auditor asks, in one form: every access to one child, or everything one user
did (subject access, as ``/v1/audit/entries``), each optionally within a date range;
any access within a date range; or, with nothing asked, the recent activity (the
newest entries). Each entry reads as a short description list (who, role,
organisation, what, why, the details, the children) with a readable time
("5 Dec 2026, 14:05:09 UTC"), never raw JSON, and the page never scrolls sideways,
down to 320 px. ``/audit/export.csv`` gives the same answer as CSV.

Every look-up (page or export) is itself audited before anything is shown (fail
closed): ``audit.entries`` for subject access, ``audit.range`` and ``audit.recent``
otherwise, ``audit.export`` for the CSV. Only the ``auditor`` role is admitted.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from protocol.errors import ValidationError
from server_common import pages
from server_common.accounts import Role, principal, require_roles
from server_common.audit.entry import AuditEntry, format_time
from server_common.audit.sealing import is_sealed
from server_common.audit.service import AuditLog, AuditRecord
from server_common.audit.web import printable
from server_common.csv_cells import safe_cell
from server_common.search_form import DateError, read_date

AuditKey = web.AppKey[AuditLog]
RECENT = 50  # entries shown as "recent activity"
MOST = 1000  # entries a date range shows (or exports) at most, newest first
_FIELDS = ("child_id", "user", "from", "to")
# a date's error links to its first box (GOV.UK date input), or to the box at fault
_FIELD_IDS = {"child_id": "child_id", "user": "user", "from": "from-day", "to": "to-day"}
_BOXES = ("day", "month", "year")
_DATE_LABELS = {"from": "From date", "to": "To date"}


def date_boxes(query: Any, name: str) -> dict[str, str]:
    """What the three boxes of the date ``name`` show: as typed, or the parts of the
    ISO date a link or the export carries (``from=2026-12-05``)."""
    typed = {p: str(query.get(f"{name}-{p}", "")).strip()[:20] for p in _BOXES}
    if any(typed.values()):
        return typed
    try:
        given = date.fromisoformat(str(query.get(name, "")).strip())
    except ValueError:
        return {"day": str(query.get(name, "")).strip()[:20], "month": "", "year": ""}
    return {"day": str(given.day), "month": str(given.month), "year": str(given.year)}


def readable(at: datetime | None) -> str:
    """``5 Dec 2026, 14:05:09 UTC``: to the second, no microseconds.

    >>> readable(datetime(2026, 12, 5, 14, 5, 9, 123456, tzinfo=UTC))
    '5 Dec 2026, 14:05:09 UTC'
    """
    if at is None:
        return "Not recorded"
    at = at.astimezone(UTC)
    return f"{at.day} {at:%b %Y, %H:%M:%S} UTC"


SEALED = "sealed: the answer held a shielded child ('audit unseal' opens it)"


def details(parameters: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """An entry's parameters as (label, text) lines: nested objects flattened with
    dotted labels, lists joined, so nothing shows as JSON.

    >>> details({"review": 3, "before": {"a": "N1", "b": "N2"}, "ids": ["x", "y"]})
    [('review', '3'), ('before a', 'N1'), ('before b', 'N2'), ('ids', 'x, y')]
    """
    out: list[tuple[str, str]] = []
    for key, value in parameters.items():
        label = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, dict):
            out += details(value, f"{label} ")
        elif isinstance(value, list):
            out.append((label, ", ".join(str(v) for v in value) or "none"))
        elif is_sealed(value):
            out.append((label, SEALED))
        else:
            out.append((label, "none" if value is None else str(value)))
    return out


@dataclass(frozen=True, slots=True)
class Question:
    """What the auditor asked, checked: at most one of child and user, and a range
    whose dates parse (``from`` and ``to`` both included)."""

    child_id: str
    user: str
    since: date | None
    until: date | None

    @classmethod
    def parse(cls, query: Any) -> Question:
        values = {k: str(query.get(k, "")).strip()[:200] for k in _FIELDS}
        for name in ("child_id", "user"):
            printable(values[name], name)
        if values["child_id"] and values["user"]:
            raise ValidationError("child_id", "give a child id or a user, not both")
        since, until = (cls._date(query, values[k], k) for k in ("from", "to"))
        if since and until and since > until:
            raise ValidationError("to", "the end date must be on or after the start date")
        return cls(values["child_id"], values["user"], since, until)

    @staticmethod
    def _date(query: Any, text: str, name: str) -> date | None:
        """The page's three boxes (``from-day`` …), or one ISO date (API and export)."""
        day, month, year = (str(query.get(f"{name}-{p}", "")).strip()[:20] for p in _BOXES)
        if day or month or year:
            try:
                return read_date(day, month, year, label=_DATE_LABELS[name], prefix=name,
                                 past=False)
            except DateError as exc:
                raise ValidationError(exc.field, exc.text) from None
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValidationError(name, "enter a real date, like 2026-12-05") from None

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        start = datetime.combine(self.since, time(), UTC) if self.since else None
        # up to the end of the last day; the last day there is has no end to give
        end = (datetime.combine(self.until + timedelta(days=1), time(), UTC)
               if self.until and self.until < date.max else None)
        return start, end

    def values(self) -> dict[str, str]:
        return {"child_id": self.child_id, "user": self.user,
                "from": self.since.isoformat() if self.since else "",
                "to": self.until.isoformat() if self.until else ""}


async def answer(request: web.Request, audit: AuditLog, question: Question,
                 action_suffix: str = "") -> tuple[str, list[AuditRecord]]:
    """What the page (or the export) shows, newest first, and what it is about; the
    look-up is recorded first."""
    who = principal(request)
    start, end = question.window
    in_range = {k: v for k, v in question.values().items() if k in ("from", "to") and v}
    if question.child_id or question.user:
        action = "audit.entries"
        asked = ({"child_id": question.child_id} if question.child_id
                 else {"user": question.user})
        about = (f"child {question.child_id}" if question.child_id
                 else f"user {question.user}")
    elif start or end:
        action, asked, about = "audit.range", {}, "the dates chosen"
    else:
        action, asked, about = "audit.recent", {}, "recent activity"
    await audit.record(AuditEntry(
        who.user, str(who.role), who.organisation, purpose="audit",
        action=action_suffix or action, parameters={**asked, **in_range},
        child_ids=(question.child_id,) if question.child_id else ()))
    if question.child_id or question.user:
        found = await (audit.entries_for_child(question.child_id) if question.child_id
                       else audit.entries_by_user(question.user))
        found = [r for r in reversed(found) if _within(r.entry.at, start, end)][:MOST]
    else:
        found = await audit.entries_between(start, end, MOST if (start or end) else RECENT)
    if in_range:
        about += f", {question.since or 'the start'} to {question.until or 'today'}"
    return about, found


def _within(at: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    return at is not None and (start is None or at >= start) and (end is None or at < end)


def _entry(r: AuditRecord) -> dict[str, Any]:
    e = r.entry
    return {"seq": r.seq, "when": readable(e.at), "iso": format_time(e.at) if e.at else "",
            "who": e.who, "role": e.role, "organisation": e.organisation or "None",
            "action": e.action, "purpose": e.purpose, "details": details(e.parameters),
            "children": ", ".join(e.child_ids) or "None"}


def page_routes(key: AuditKey, child_label: str) -> list[web.RouteDef]:
    @require_roles(Role.AUDITOR)
    async def audit_page(request: web.Request) -> web.Response:
        audit = request.app[key]
        checkpoint = await audit.latest_checkpoint()
        values = {k: str(request.query.get(k, "")).strip()[:200] for k in _FIELDS}
        context: dict[str, Any] = {
            "title": "Audit log", "child_label": child_label, "values": values,
            "dates": {k: date_boxes(request.query, k) for k in ("from", "to")},
            "field_errors": {},
            "checkpoint": None if checkpoint is None else {
                "size": checkpoint.size, "root": checkpoint.to_dict()["root_hash"],
                "when": readable(checkpoint.time)}}
        try:
            question = Question.parse(request.query)
        except ValidationError as exc:
            # the summary links to the field (a date: its first box, or the box at fault)
            error = pages.FieldError(_FIELD_IDS.get(exc.field, exc.field),
                                     exc.reason[:1].upper() + exc.reason[1:])
            context["errors"] = [error]
            context["field_errors"] = {error.field: {"text": error.text}}
            context["code"] = str(exc.code)
            return pages.render(request, "audit.html", context, status=400)
        about, found = await answer(request, audit, question)
        export = urlencode({k: v for k, v in question.values().items() if v})
        context.update(title=f"Audit log: {about}", about=about,
                       entries=[_entry(r) for r in found],
                       export="/audit/export.csv" + (f"?{export}" if export else ""))
        return pages.render(request, "audit.html", context)

    @require_roles(Role.AUDITOR)
    async def export_csv(request: web.Request) -> web.Response:
        question = Question.parse(request.query)  # a 400 with its code if it does not
        _, found = await answer(request, request.app[key], question, "audit.export")
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["seq", "at", "who", "role", "organisation", "action", "purpose",
                         "parameters", "child_ids"])
        for r in found:
            e = r.entry
            writer.writerow([r.seq, format_time(e.at) if e.at else ""] + [safe_cell(v) for v in (
                e.who, e.role, e.organisation, e.action, e.purpose,
                json.dumps(e.parameters, ensure_ascii=False, sort_keys=True),
                " ".join(e.child_ids))])
        return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition":
                                     'attachment; filename="audit.csv"'})

    return [web.get("/audit", audit_page), web.get("/audit/export.csv", export_csv)]
