"""What one ingest chunk knows of the children it can touch, in memory.

A chunk reads, in a few set-based queries, the children its rows can be placed with
(``IngestService``), and indexes them here by identifier, by name and date of birth,
and by blocking key; as its rows are placed, the children they change or create are
indexed again under who they now are.
"""

from __future__ import annotations

import functools
from datetime import date

from local_node.feeds import Identity
from local_node.storage.children import ChildRow
from protocol.matching import IdentityFields
from protocol.matching.blocking import remembering_blocking_keys

# A child's identity as a row or the rules leave it differs from the one it had most
# often by an identifier, a postcode in the same district or an address: the keys of
# its names, date of birth and district are remembered apart. A few chunks' worth (about
# 1.4 kB each): most of what is found again is found within a chunk (bench.ingest
# --children 20000 made them 26,479 times of 37,016; 23,812 remembering 100,000).
_blocking_keys = remembering_blocking_keys(20_000)


@functools.lru_cache(maxsize=200_000)
def keys_for(fields: IdentityFields) -> frozenset[str]:
    """Blocking keys, remembered: a child's identity rarely changes between rows."""
    return frozenset(_blocking_keys(fields))


def child_fields(child: ChildRow) -> IdentityFields:
    return IdentityFields(
        given_name=child.given_name, family_name=child.family_name, dob=child.dob,
        sex=child.sex, other_given_names=child.other_given_names,
        former_family_names=tuple(child.former_family_names or ()),
        postcode=child.postcode, address_line=child.address_line,
        nhs_number=child.nhs_number, upn=child.upn,
    )


def row_fields(ident: Identity) -> IdentityFields:
    return IdentityFields(
        given_name=ident.given_name, family_name=ident.family_name, dob=ident.dob,
        sex=ident.sex, other_given_names=ident.other_given_names,
        former_family_names=(ident.former_family_name,) if ident.former_family_name else (),
        postcode=ident.postcode, address_line=ident.address_line,
        nhs_number=ident.nhs_number, upn=ident.upn,
    )


def name_key(given: str | None, family: str | None,
              dob: date | None) -> tuple[str, str, date] | None:
    """The exact-match key, or None when a part is absent (never matched on less)."""
    if not (given and family and dob):
        return None
    return (given.strip().lower(), family.strip().lower(), dob)


class ChunkIndex:
    """In-memory lookups over the children one chunk can touch."""

    def __init__(self, children: list[ChildRow]) -> None:
        self.by_id: dict[str, ChildRow] = {}
        self.by_nhs: dict[str, ChildRow] = {}
        self.by_upn: dict[str, ChildRow] = {}
        # (given, family, dob) → {id(child): child}
        self.by_name: dict[tuple[str, str, date], dict[int, ChildRow]] = {}
        # key → {id(child): child}: dicts, since a common key can hold thousands of
        # children and a list membership test would make a chunk quadratic.
        self.by_key: dict[str, dict[int, ChildRow]] = {}
        # id(child) → the identity it was last indexed under: a row that changes
        # nothing of who the child is (most of them) is not indexed again.
        self.indexed: dict[int, IdentityFields] = {}
        # local_id → who the child was as loaded: the blocking keys it holds in the
        # database are those of this identity, and only the difference is written.
        self.loaded: dict[str, IdentityFields] = {}
        for child in children:
            self.add(child)

    def add(self, child: ChildRow, keys: list[str] | None = None) -> None:
        """A child as loaded from the database, indexed by its identifiers and name, and
        under ``keys`` (a candidate: the keys it was found by). Not under the other keys
        it holds: every key a row is matched by is first read from the database
        (``IngestService._fetch_candidates``), which finds the child by it if the key is
        not too common; indexing every found child under every key it holds, in case,
        was a tenth of an ingest's CPU."""
        self.by_id[child.local_id] = child
        fields = child_fields(child)
        self.loaded[child.local_id] = fields
        if keys is None:
            self.reindex(child, fields)
            return
        self.indexed[id(child)] = fields
        self.add_keys(child, keys)

    def add_keys(self, child: ChildRow, keys: list[str]) -> None:
        for key in keys:
            self.by_key.setdefault(key, {})[id(child)] = child

    def fields(self, child: ChildRow) -> IdentityFields:
        """Who an indexed child now is: ``child_fields(child)`` without building it again,
        since every change to a child in the chunk is followed by :meth:`reindex`."""
        return self.indexed[id(child)]

    def held(self, local_id: str) -> frozenset[str]:
        """The blocking keys the child holds in the database (none if it is new)."""
        loaded = self.loaded.get(local_id)
        return keys_for(loaded) if loaded is not None else frozenset()

    def reindex(self, child: ChildRow, fields: IdentityFields | None = None) -> None:
        """Index the child as it now is (``fields``, if the caller has them): by
        identifiers, name and the blocking keys the database does not hold for it (all of
        a new child's; a loaded child's that its rows in this chunk gave it)."""
        fields = child_fields(child) if fields is None else fields
        if self.indexed.get(id(child)) == fields:
            return
        self.indexed[id(child)] = fields
        if child.nhs_number:
            self.by_nhs.setdefault(child.nhs_number, child)
        if child.upn:
            self.by_upn.setdefault(child.upn, child)
        same_name = name_key(child.given_name, child.family_name, child.dob)
        if same_name is not None:
            self.by_name.setdefault(same_name, {})[id(child)] = child
        if fields == self.loaded.get(child.local_id):
            return  # as loaded: it holds every key of who it is (none to ask for)
        for key in keys_for(fields) - self.held(child.local_id):
            self.by_key.setdefault(key, {})[id(child)] = child
