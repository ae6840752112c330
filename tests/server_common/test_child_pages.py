"""How a child's page orders councils and services and words them (pure functions, on
the view's JSON as the hub and node answer it)."""

from __future__ import annotations

from datetime import date

from server_common.child_pages import current_first, open_first, service_dates, service_words
from server_common.display import long_date, match_strength, name_case
from server_common.search_form import SearchForm, read_date

TODAY = date(2026, 12, 5)


def council(code: str, updated: str, *services: tuple[str, str | None, str | None],
            withheld: bool = False) -> dict[str, object]:
    return {"council": code, "updated_at": updated, "withheld": withheld,
            "services": [{"service_type": t, "start_date": s, "end_date": e}
                         for t, s, e in services]}


def test_the_council_where_the_child_is_now_comes_first() -> None:
    # the finding: a council whose services all ended came first (updated last)
    ended = council("A", "2026-12-01", ("school", "2019-09-01", "2024-07-20"))
    now = council("B", "2025-01-01", ("gp", "2024-08-01", None), ("school", "2024-09-02", None))
    older = council("C", "2026-11-01", ("gp", "2015-04-01", None))
    hidden = council("D", "2026-12-04", withheld=True)
    order = [c["council"] for c in current_first([ended, older, hidden, now], TODAY)]
    assert order == ["B", "C", "A", "D"]


def test_services_in_words_with_their_dates() -> None:
    assert service_words("camhs") == "Child and adolescent mental health service (CAMHS)"
    assert service_words("youth_justice") == "Youth justice service"
    assert service_words("forest_school") == "Forest school"  # unknown: still words
    assert service_dates({"start_date": "2023-01-10", "end_date": None}, TODAY) == \
        "Since 10 January 2023"
    assert service_dates({"start_date": "2023-01-10", "end_date": "2027-01-01"}, TODAY) == \
        "Since 10 January 2023"  # ends in the future: still open
    assert service_dates({"start_date": "2019-09-01", "end_date": "2024-07-20"}, TODAY) == \
        "1 September 2019 to 20 July 2024"
    assert service_dates({"start_date": None, "end_date": "2024-07-20"}, TODAY) == \
        "Ended 20 July 2024"
    assert service_dates({"start_date": None, "end_date": None}, TODAY) == ""
    services: list[dict[str, str | None]] = [
                {"service_type": "a", "start_date": "2019-01-01", "end_date": "2020-01-01"},
                {"service_type": "b", "start_date": "2018-01-01", "end_date": None},
                {"service_type": "c", "start_date": "2023-01-01", "end_date": None}]
    assert [s["service_type"] for s in open_first(services, TODAY)] == ["c", "b", "a"]


def test_names_dates_and_strengths_as_people_write_them() -> None:
    assert name_case("OKONKWO-REILLY") == "Okonkwo-Reilly"
    assert name_case("O'NEILL") == "O'Neill" and name_case("McDonald") == "McDonald"
    assert name_case("zoë") == "Zoë" and name_case(None) == ""
    assert long_date("2015-08-19") == "19 August 2015" and long_date("soon") == "soon"
    assert [match_strength(p) for p in (0.97, 0.9, 0.6, 0.2)] == [
        "Strong", "Strong", "Possible", "Weak"]


def test_dates_of_birth_as_people_type_them() -> None:
    for typed in (("19", "8", "2015"), ("19/08/2015", "", ""), ("19.8.2015", "", ""),
                  ("19 Aug 2015", "", ""), ("2015-08-19", "", ""), ("19", "august", "2015")):
        assert read_date(*typed, today=TODAY) == date(2015, 8, 19), typed
    assert read_date("", "", "") is None
    form = SearchForm.from_post({"dob-day": "19/08/2015"})
    assert (form.dob_day, form.dob_month, form.dob_year) == ("19", "08", "2015")
    # the words typed without choosing the radio still say why
    assert SearchForm.from_post({"purpose_other": "Court report"}).purpose_text() == \
        "Court report"
