"""Projection: exactly what of a child leaves the council (docs/design.md §3), into the outbox.

Nothing else is ever published. Sensitive services go only with recorded
consent; case notes and source-system detail are not even representable in a
ChildRecord. A child whose projection is unchanged produces no outbox entry, so
re-ingesting the same feed publishes nothing.
"""

from __future__ import annotations

import logging
import operator
from typing import Any

import asyncpg

from local_node.storage.children import ChildRow, ChildStore, InvolvementRow
from local_node.storage.outbox import OutboxStore
from local_node.storage.shielding import ShieldStore
from protocol import encoding
from protocol.errors import SignpostError
from protocol.records import RECORD_FIELDS, ChildRecord, Involvement, record_wire

log = logging.getLogger(__name__)


# An involvement's published fields, in Involvement's order (InvolvementRow names them
# the same), read in one C call.
_POINTER_FIELDS = operator.attrgetter(*Involvement.__slots__)
# Children share pointers (the same school from the same September, the same GP): each
# distinct one is built once, with its wire map, not once per child each time the child
# is projected. Bounded; Involvement is frozen, so sharing one between records is safe,
# and its map is only read (packed and checked) by the projection.
_POINTERS: dict[tuple[Any, ...], tuple[Involvement, dict[str, Any]]] = {}
_POINTERS_MAX = 50_000


def _involvement(row: InvolvementRow) -> tuple[Involvement, dict[str, Any]] | None:
    if row.sensitive and not row.consent:
        return None  # held locally; never published without consent
    key = _POINTER_FIELDS(row)
    found = _POINTERS.get(key)
    if found is None:
        if len(_POINTERS) >= _POINTERS_MAX:
            _POINTERS.clear()
        pointer = Involvement(*key)
        found = _POINTERS[key] = (pointer, pointer.to_wire())
    return found


def _published(involvements: list[InvolvementRow]) -> list[tuple[Involvement, dict[str, Any]]]:
    return [i for i in map(_involvement, involvements) if i is not None]


def _record_values(child: ChildRow, marked: bool) -> tuple[Any, ...]:
    """The child's record fields but its involvements, in ``RECORD_FIELDS`` order."""
    return (child.local_id, child.given_name, child.family_name, child.dob, child.sex,
            child.other_given_names, tuple(child.former_family_names or ()),
            child.address_line, child.postcode, child.nhs_number, child.upn,
            child.parent_carer_name, child.parent_carer_phone, child.shielded or marked,
            child.date_of_death)


def project(child: ChildRow, involvements: list[InvolvementRow], *,
            marked: bool = False) -> ChildRecord:
    """What the hub gets of ``child``. A child the node counts as shielded through a
    relation (``marked``: a duplicate, a review pair, a shared NHS number or UPN of a
    shielded child, or the hub's word) is published shielded too: the hub may never
    pair the two records, and must not show this one's location meanwhile."""
    return ChildRecord(**dict(zip(RECORD_FIELDS, _record_values(child, marked), strict=True)),
                       involvements=tuple(i for i, _ in _published(involvements)))


def projected_wire(child: ChildRow, involvements: list[InvolvementRow], *,
                   marked: bool = False) -> dict[str, Any]:
    """``project(child, involvements, marked=marked).to_wire()``, without building the
    record: the projection checks the map with the hub's own ``ChildRecord.from_wire``,
    which builds it, and building it before as well was 7 % of an ingest's samples."""
    return record_wire(_record_values(child, marked),
                       [wire for _, wire in _published(involvements)])


class Projector:
    def __init__(self, children: ChildStore, outbox: OutboxStore,
                 shields: ShieldStore | None = None) -> None:
        self.children = children
        self.outbox = outbox
        self.shields = shields or ShieldStore()

    async def publish_changes(self, conn: asyncpg.Connection, local_ids: list[str]) -> int:
        """Put changed projections of these children in the outbox (caller's transaction).

        Returns how many outbox entries were written.
        """
        if not local_ids:
            return 0
        return await self.publish_children(conn, await self.children.get_many(conn, local_ids))

    async def publish_children(self, conn: asyncpg.Connection, rows: list[ChildRow]) -> int:
        """:meth:`publish_changes` for children the caller holds as written (an ingest
        chunk has just upserted them), without reading them back."""
        if not rows:
            return 0
        invs = await self.children.involvements_of(conn, [c.local_id for c in rows])
        shielded = await self.shields.shielded_among(conn, [c.local_id for c in rows])
        entries: list[tuple[str, int, str, bytes | None, str | None]] = []
        published: list[tuple[str, int, str | None]] = []
        for child in rows:
            if child.merged_into is not None:
                # Absorbed by a merge: withdraw it from the hub (once). A child who left
                # the area is *not* withdrawn: its ended involvements (with their end
                # dates) are exactly what a practitioner in the new area needs to see.
                if child.published_digest is not None:
                    version = child.published_version + 1
                    entries.append((child.local_id, version, "delete", None, None))
                    published.append((child.local_id, version, None))
                continue
            wire = projected_wire(child, invs.get(child.local_id, []),
                                  marked=child.local_id in shielded)
            data = encoding.pack(wire)
            digest = encoding.sha256_hex(data)
            if digest == child.published_digest:
                continue  # published as it is (and checked then)
            try:
                # The hub's own check: never publish what it refuses. (The compiled
                # decoder, protocol.record_codec, costs as much here: it must decode the
                # bytes first, where this checks the map already built.)
                ChildRecord.from_wire(wire)
            except SignpostError as exc:
                log.warning("child not published: fails the record checks",
                            extra={"local_id": child.local_id, "reason": exc.message})
                continue
            version = child.published_version + 1
            entries.append((child.local_id, version, "upsert", data, digest))
            published.append((child.local_id, version, digest))
        await self.outbox.add(conn, entries)
        await self.children.set_published(conn, published)
        return len(entries)
