"""Who may see what of a council's record at the hub (DESIGN §3, §6); pure.

* A **shielded** child (any council's record of it is shielded — one council's
  fresh address would undo another's shielding) shows practitioners no address,
  school, GP or other pointer that could lead to where the child lives: only who
  the child is and which council's index team to contact. The index team of a
  council sees its own council's record in full; it brokers contact.
* **Sensitive** services (sexual health, mental health, substance misuse) reach the
  hub only with the child's recorded consent, and are shown only to the index team
  of the council that published them; never to practitioners.

    >>> team = Viewer("index_team", "E10000011")
    >>> team.sees_location("E10000011", shielded=True), team.sees_location(
    ...     "E06000020", shielded=True)
    (True, False)
    >>> Viewer("practitioner", None).sees_sensitive("E10000011")
    False
"""

from __future__ import annotations

from dataclasses import dataclass

from server_common.accounts.principal import Principal, Role


@dataclass(frozen=True, slots=True)
class Viewer:
    role: str
    council: str | None

    @classmethod
    def of(cls, who: Principal) -> Viewer:
        return cls(str(who.role), who.council)

    def index_team_of(self, council: str) -> bool:
        return self.role == Role.INDEX_TEAM and self.council == council

    def sees_location(self, council: str, *, shielded: bool) -> bool:
        """Address, school, GP, every pointer and the parent/carer contact."""
        return not shielded or self.index_team_of(council)

    def sees_sensitive(self, council: str) -> bool:
        return self.index_team_of(council)
