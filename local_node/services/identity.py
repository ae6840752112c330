"""The child in one place: which of its source rows says who the child is.

Stated rules (docs/design.md §3):

- **Names, date of birth, sex** come from the most trusted source that has the
  child: health (registered with the NHS spine) over education over services;
  between rows of equally trusted sources, the most recently received wins. A row
  that lacks one of them (blank or invalid in its feed) gives way, for that field,
  to the next row that states it; when no row does, the child is flagged
  **incomplete** with the reason its most trusted row gave.
- **Address and postcode** come from the most recently received row that has one:
  a move shows up first in whichever service hears of it.
- **Parent/carer name and phone** come, together, from the most recently received
  row that states either: whom to call changes with the family, and the name of one
  carer is never paired with another's phone.
- **Former family names** are those any source states explicitly.
- **NHS number and UPN** are never chosen here: ingest adds them to a child and never
  moves one between children (a conflict is reported and kept apart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import msgspec

from local_node.feed_kinds import CORE_FIELDS, feed_kind
from local_node.storage.children import ChildRow


def source_trust(source: str) -> int:
    """How far a feed's rows are trusted to say who a child is (the feed table's rank);
    a source that is not a known feed is refused, not ranked lowest."""
    return feed_kind(source).trust


# A chunk decodes thousands of source rows' identities (JSON text, as asyncpg reads
# jsonb): msgspec's decoder, in C, gives the same dicts at a quarter of json.loads' cost.
_JSON = msgspec.json.Decoder()


def _identity(row: Mapping[str, Any]) -> dict[str, Any]:
    value = row["identity"]
    return _JSON.decode(value) if isinstance(value, str) else dict(value)


def apply_rules(child: ChildRow, sources: Sequence[Mapping[str, Any]]) -> None:
    """Set the child's identity fields from its source rows (oldest first): records of
    ``source_records`` (``identity`` as JSON or decoded), or a row not yet read back,
    its identity's fields as they are (a date as a date)."""
    if not sources:
        return
    # Each row's identity decoded once (a chunk applies the rules to thousands).
    rows = [(source_trust(r["source"]), r["received_at"], _identity(r)) for r in sources]
    # most trusted first; between equals, the most recently received (reversed, not
    # sorted in reverse: rows received together keep the order they always had)
    stated = [i for _, _, i in reversed(sorted(rows, key=lambda r: (r[0], r[1])))]
    child.given_name = next((i["given_name"] for i in stated if i.get("given_name")), None)
    child.family_name = next((i["family_name"] for i in stated if i.get("family_name")), None)
    dob = next((i["dob"] for i in stated if i.get("dob")), None)
    child.dob = date.fromisoformat(str(dob)) if dob else None
    child.incomplete = _incomplete(child, stated)
    # Other given names and sex: the most trusted row that states them.
    child.other_given_names = next(
        (i["other_given_names"] for i in stated if i.get("other_given_names")), None)
    child.sex = next((int(i["sex"]) for i in stated if i.get("sex")), 0)
    newest_first = [i for _, _, i in sorted(rows, key=lambda r: r[1], reverse=True)]
    child.postcode = next((i["postcode"] for i in newest_first if i.get("postcode")), None)
    child.address_line = next(
        (i["address_line"] for i in newest_first if i.get("address_line")), None)
    carer = next((i for i in newest_first
                  if i.get("parent_carer_name") or i.get("parent_carer_phone")), {})
    child.parent_carer_name = carer.get("parent_carer_name")
    child.parent_carer_phone = carer.get("parent_carer_phone")
    formers = []
    for _, _, identity in rows:
        name = identity.get("former_family_name")
        if name and name != child.family_name and name not in formers:
            formers.append(name)
    child.former_family_names = formers


def _incomplete(child: ChildRow, stated: Sequence[dict[str, Any]]) -> str | None:
    """"field: reason; ..." for each core field no row supplies, or None."""
    reasons = []
    for name in CORE_FIELDS:
        if getattr(child, name) is None:
            noted = (r for i in stated for r in i.get("incomplete") or ()
                     if r.split(":", 1)[0] == name)
            reasons.append(next(noted, f"{name}: blank"))
    return "; ".join(reasons) or None
