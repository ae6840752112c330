"""Retention (docs/design.md §3): when a child's record is archived and when it is purged.

A record is **archived** when the child turns 18 (25 for a care leaver who consented
to sharing), or one year after the child's death if that comes first; it is
**purged** six years after it was archived. Ages, years and the services that mark a
care leaver are configuration; node and hub apply the same rules to the same fields.

A birthday on 29 February falls on 1 March in a year without one (the age is
reached at the start of the anniversary, and there is no 29 February).

    >>> policy = RetentionPolicy()
    >>> policy.archive_on(date(2008, 2, 29), None, care_leaver=False)
    datetime.date(2026, 3, 1)
    >>> policy.purge_on(date(2008, 5, 1), None, care_leaver=False)
    datetime.date(2032, 5, 1)
    >>> policy.archive_on(date(2015, 1, 1), date(2020, 6, 30), care_leaver=False)
    datetime.date(2021, 6, 30)
    >>> policy.state(date(2008, 5, 1), None, False, today=date(2026, 5, 1))
    'archived'
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date
from typing import TYPE_CHECKING

from protocol.errors import SignpostError
from protocol.record_codec import decode_record

if TYPE_CHECKING:
    from protocol.records import ChildRecord

LIVE, ARCHIVED, PURGE = "live", "archived", "purge"


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later; 29 February becomes 1 March in a common year. Past
    the calendar's ends it stays at them (a date of death in year 9999 has no upper
    bound to stop it, and a year after it is then "never", not an error).

    >>> add_years(date(9999, 12, 31), 1), add_years(date(1, 1, 1), -1)
    (datetime.date(9999, 12, 31), datetime.date(1, 1, 1))
    """
    year = day.year + years
    if year > MAXYEAR:
        return date.max
    if year < MINYEAR:
        return date.min
    if day.month == 2 and day.day == 29 and not calendar.isleap(year):
        return date(year, 3, 1)
    return day.replace(year=year)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    archive_age: int = 18
    care_leaver_archive_age: int = 25
    purge_after_years: int = 6
    live_after_death_years: int = 1
    # An involvement of one of these service types, with recorded consent, marks a
    # care leaver (kept live until care_leaver_archive_age).
    care_leaver_services: tuple[str, ...] = ("leaving_care",)

    def __post_init__(self) -> None:
        if not 0 < self.archive_age <= self.care_leaver_archive_age:
            raise ValueError("archive_age must be positive and at most care_leaver_archive_age")
        if self.purge_after_years < 0 or self.live_after_death_years < 0:
            raise ValueError("purge_after_years and live_after_death_years must not be negative")

    def is_care_leaver(self, involvements: Iterable[tuple[str, bool]]) -> bool:
        """True if any (service_type, consent) pair is a care-leaving service with consent."""
        return any(consent and service in self.care_leaver_services
                   for service, consent in involvements)

    def archive_on(self, dob: date, date_of_death: date | None, *, care_leaver: bool) -> date:
        age = self.care_leaver_archive_age if care_leaver else self.archive_age
        when = add_years(dob, age)
        if date_of_death is not None:
            when = min(when, add_years(date_of_death, self.live_after_death_years))
        return when

    def purge_on(self, dob: date, date_of_death: date | None, *, care_leaver: bool) -> date:
        return add_years(self.archive_on(dob, date_of_death, care_leaver=care_leaver),
                         self.purge_after_years)

    def archived_on(self, dob: date | None, date_of_death: date | None, care_leaver: bool,
                    *, today: date) -> date | None:
        """The day the record was archived if it is due to be by ``today`` (archived, or
        past purging too), else None: what a record arriving now is stored with.

        >>> RetentionPolicy().archived_on(date(2000, 1, 1), None, False, today=date(2026, 1, 1))
        datetime.date(2018, 1, 1)
        """
        if dob is None or self.state(dob, date_of_death, care_leaver, today=today) == LIVE:
            return None
        return self.archive_on(dob, date_of_death, care_leaver=care_leaver)

    def record_archived_on(self, record: ChildRecord, *, today: date) -> date | None:
        """:meth:`archived_on` for a record as published: its date of birth, date of
        death and whether a consented involvement makes it a care leaver's."""
        return self.archived_on(
            record.dob, record.date_of_death,
            self.is_care_leaver((i.service_type, i.consent) for i in record.involvements),
            today=today)

    def may_be_due(self, dob: date | None, may_have_died: bool, *, today: date) -> bool:
        """Whether a stored record could be past its archive date by ``today``: old
        enough, or holding a date of death. Only those need their bytes read
        (:meth:`stored_record_due`); the rest are live whatever they hold.

        >>> RetentionPolicy().may_be_due(date(2010, 1, 1), False, today=date(2026, 1, 1))
        False
        """
        return may_have_died or (dob is not None
                                 and dob <= add_years(today, -self.archive_age))

    def stored_record_due(self, data: bytes, *, today: date) -> bool:
        """Whether a stored record (its exact bytes) is past its archive date by
        ``today``, whether or not the retention job has marked it archived yet. Bytes
        damaged in storage are not judged here (the job judges them; anti-entropy
        repairs them)."""
        try:
            record = decode_record(data)
        except SignpostError:
            return False
        return self.record_archived_on(record, today=today) is not None

    def state(self, dob: date, date_of_death: date | None, care_leaver: bool, *,
              today: date) -> str:
        """``live``, ``archived`` or ``purge`` (due to be purged) on ``today``."""
        if self.purge_on(dob, date_of_death, care_leaver=care_leaver) <= today:
            return PURGE
        if self.archive_on(dob, date_of_death, care_leaver=care_leaver) <= today:
            return ARCHIVED
        return LIVE
