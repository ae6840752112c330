"""Hub search scores a search's records in bulk: each answer equals the per-record one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from national_hub.services.search import answers
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
    assert answers(query, candidates) == [answer(query, c) for c in candidates]


def test_no_candidates() -> None:
    assert answers(SearchQuery(given_name="Amelia", family_name="Okafor"), []) == []
