"""The node's navigation for each role, in the header of every page (server_common.pages).

    >>> [text for _, text in NODE_NAV[Role.PRACTITIONER]]
    ['Home', 'Search', 'Notices']
"""

from __future__ import annotations

from server_common.accounts.principal import Role
from server_common.pages import Nav

NODE_NAV: Nav = {
    Role.PRACTITIONER: (("/", "Home"), ("/search", "Search"), ("/notices", "Notices")),
    Role.INDEX_TEAM: (("/", "Home"), ("/search", "Search"), ("/review", "Review"),
                      ("/notices", "Notices")),
    Role.OPERATOR: (("/", "Home"),),
    Role.AUDITOR: (("/", "Home"), ("/audit", "Audit log")),
}
