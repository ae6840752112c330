"""protocol.retention: the dates the archive/purge job works from."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.retention import ARCHIVED, LIVE, PURGE, RetentionPolicy, add_years
from server_common.config import ConfigError
from server_common.retention_config import RetentionConfig

days = st.dates(date(1990, 1, 1), date(2100, 12, 31))


@given(days, st.integers(0, 40))
def test_add_years_keeps_the_day_or_moves_29_february_to_1_march(day: date, years: int) -> None:
    later = add_years(day, years)
    assert later.year == day.year + years
    if (day.month, day.day) == (2, 29) and later.month == 3:
        assert later.day == 1
    else:
        assert (later.month, later.day) == (day.month, day.day)


@given(days, st.one_of(st.none(), days), st.booleans(), days)
def test_states_follow_the_dates(dob: date, death: date | None, care_leaver: bool,
                                 today: date) -> None:
    policy = RetentionPolicy()
    archive = policy.archive_on(dob, death, care_leaver=care_leaver)
    purge = policy.purge_on(dob, death, care_leaver=care_leaver)
    assert purge == add_years(archive, 6) and archive <= add_years(dob, 25)
    assert policy.state(dob, death, care_leaver, today=archive - timedelta(days=1)) == LIVE
    assert policy.state(dob, death, care_leaver, today=archive) == ARCHIVED
    assert policy.state(dob, death, care_leaver, today=purge) == PURGE


@pytest.mark.parametrize(("dob", "death", "care_leaver", "archive"), [
    (date(2008, 5, 1), None, False, date(2026, 5, 1)),
    (date(2008, 5, 1), None, True, date(2033, 5, 1)),
    (date(2008, 2, 29), None, False, date(2026, 3, 1)),
    (date(2015, 1, 1), date(2020, 6, 30), False, date(2021, 6, 30)),
    (date(2008, 5, 1), date(2026, 1, 1), False, date(2026, 5, 1)),  # 18 comes first
])
def test_archive_dates(dob: date, death: date | None, care_leaver: bool,
                       archive: date) -> None:
    assert RetentionPolicy().archive_on(dob, death, care_leaver=care_leaver) == archive


def test_a_care_leaver_needs_consent() -> None:
    policy = RetentionPolicy()
    assert policy.is_care_leaver([("school", True), ("leaving_care", True)])
    assert not policy.is_care_leaver([("leaving_care", False)])


def test_policy_is_configuration_checked_at_start_up() -> None:
    config = RetentionConfig(archive_age=19, care_leaver_services="leaving_care, aftercare")
    assert config.policy().archive_age == 19
    assert config.policy().care_leaver_services == ("leaving_care", "aftercare")
    with pytest.raises(ConfigError):
        RetentionConfig(archive_age=30)  # above the care leavers' age
