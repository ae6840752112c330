"""Who is asking: roles and the principal a request is authenticated as.

Example::

    >>> Principal(user="asha", role=Role.INDEX_TEAM, organisation="East Sussex CC",
    ...           council="E10000011")
    Principal(user='asha', role=<Role.INDEX_TEAM: 'index_team'>, ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web


class Role(StrEnum):
    PRACTITIONER = "practitioner"
    INDEX_TEAM = "index_team"  # always for one council
    OPERATOR = "operator"
    AUDITOR = "auditor"


# Who may search for children and open a child's record (docs/design.md §6): never operators
# or auditors, whose work needs no child's details.
CHILD_READERS = (Role.PRACTITIONER, Role.INDEX_TEAM)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated user of one request, as handlers (and the audit log) see it."""

    user: str
    role: Role
    organisation: str
    council: str | None  # set for index_team only


# Set on each request by ``accounts_middleware``: who is asking, and the session's CSRF
# token (here, not in ``web``, so the page shell can read them without importing it).
PRINCIPAL = web.RequestKey("principal", Principal)
CSRF = web.RequestKey("csrf_token", str)
