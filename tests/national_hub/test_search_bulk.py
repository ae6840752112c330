"""Hub search scores a search's records one by one when they are few and in bulk when
they are many: either way each answer equals the per-record one."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from national_hub.services.search import BULK_FROM, answers
from protocol.matching import IdentityFields
from protocol.search import SearchQuery, answer
from tests import strategies


@settings(max_examples=150, deadline=None)
@given(st.lists(strategies.identity_pairs(), min_size=1, max_size=12), st.data())
def test_bulk_answers_equal_answer(pairs: list[tuple[IdentityFields, IdentityFields]],
                                   data: st.DataObject) -> None:
    asked = data.draw(st.sampled_from([a for a, _ in pairs]))
    query = SearchQuery(given_name=asked.given_name, family_name=asked.family_name,
                        dob=asked.dob, postcode=asked.postcode,
                        nhs_number=asked.nhs_number, upn=asked.upn)
    candidates = [b for _, b in pairs] + [a for a, _ in pairs]
    one_by_one = [answer(query, c) for c in candidates]
    assert answers(query, candidates, bulk_from=0) == one_by_one
    assert answers(query, candidates) == one_by_one  # however many there are


def test_bulk_from_many_candidates() -> None:
    """Past ``BULK_FROM`` candidates the bulk pass answers, as one by one would."""
    query = SearchQuery(given_name="Izzy", family_name="Okonkwo-Reily", dob=date(2015, 3, 14))
    candidates = [IdentityFields(given, family, date(2015, month, day), 2)
                  for given in ("Isabella", "Isabel", "Elizabeth", "Okonkwo-Reilly")
                  for family in ("Okonkwo-Reilly", "Okonkwo", "Isabella")
                  for month, day in ((3, 14), (14 % 12, 3), (3, 15), (4, 13), (3, 13), (1, 4))]
    assert len(candidates) >= BULK_FROM
    found = answers(query, candidates)
    assert found == [answer(query, c) for c in candidates]
    assert sum(a is not None for a in found) > 1

def test_no_candidates() -> None:
    query = SearchQuery(given_name="Amelia", family_name="Okafor")
    assert answers(query, []) == answers(query, [], bulk_from=0) == []
