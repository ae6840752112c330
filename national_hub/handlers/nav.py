"""The hub's navigation for each role, in the header of every page (server_common.pages).

    >>> [text for _, text in HUB_NAV[Role.INDEX_TEAM]]
    ['Search', 'Review']
"""

from __future__ import annotations

from server_common.accounts.principal import Role
from server_common.pages import Nav

HUB_NAV: Nav = {
    Role.PRACTITIONER: (("/", "Search"),),
    Role.INDEX_TEAM: (("/", "Search"), ("/review", "Review")),
    Role.OPERATOR: (("/", "Home"), ("/ops", "Federation health")),
    Role.AUDITOR: (("/", "Home"), ("/audit", "Audit log")),
}
