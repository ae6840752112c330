"""Why a record is linked: ``GET /v1/links/{council}/{local_id}/explain`` (docs/design.md §5).

For each partner record (linked, queued for review, or decided), each field's
comparison level and weight, the total, the thresholds and the model's version, as
the resolver scores the pair now. Operators see every record; the index team sees
its own council's. The read is audited first (fail closed).
"""

from __future__ import annotations

import re

from aiohttp import web

from national_hub.handlers import appkeys as k
from protocol.disclosure import Viewer
from protocol.errors import AuthError, ErrorCode, NotFoundError
from protocol.records import is_local_id
from server_common.accounts import Role, principal, require_roles
from server_common.audit.entry import AuditEntry
from server_common.web import shown_json

_COUNCIL_CODE = re.compile(r"[A-Z][0-9]{8}")  # as protocol.batch.check_council_code


@require_roles(Role.OPERATOR, Role.INDEX_TEAM)
async def get_explain(request: web.Request) -> web.Response:
    council, local_id = request.match_info["council"], request.match_info["local_id"]
    if not (_COUNCIL_CODE.fullmatch(council) and is_local_id(local_id)):
        # never asked of the database, which refuses a NUL in text (a 500, not a 404)
        raise NotFoundError(f"no live record {council[:16]!r}/{local_id[:64]!r}")
    who = principal(request)
    if who.role == Role.INDEX_TEAM and who.council != council:
        raise AuthError(f"the index team of {who.council} cannot see {council}'s records",
                        code=ErrorCode.FORBIDDEN, status=403)
    explained = await request.app[k.REVIEW].explain(council, local_id, Viewer.of(who))
    child_ids = sorted({explained["national_id"], *(
        p["partner"]["national_id"] for p in explained["partners"])} - {None})
    await request.app[k.AUDIT].record(AuditEntry(
        who.user, str(who.role), who.organisation, purpose="identity resolution",
        action="link.explain", parameters={"council": council, "local_id": local_id},
        child_ids=tuple(child_ids)))
    return shown_json(explained)


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/links/{council}/{local_id}/explain", get_explain)]
