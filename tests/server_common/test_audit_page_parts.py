"""The audit page's pure parts: readable times, parameters as lines, CSV cells a
spreadsheet will not run, and the question's checks (the page itself is driven in a
browser by tests/national_hub/test_audit_page.py and tests/local_node/test_node_review_page.py)."""

from __future__ import annotations

import doctest
from datetime import UTC, date, datetime

import pytest

from protocol.errors import ValidationError
from server_common.audit import page
from server_common.audit.page import Question


def test_the_docstring_examples() -> None:
    assert doctest.testmod(page).failed == 0


def test_a_question_is_checked() -> None:
    asked = Question.parse({"from": "2026-12-01", "to": "2026-12-05", "user": " ann "})
    assert (asked.user, asked.since, asked.until) == ("ann", date(2026, 12, 1), date(2026, 12, 5))
    # both days included: the window ends at the start of the day after "to"
    assert asked.window == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 6, tzinfo=UTC))
    # the page's three boxes, a whole date typed in the first, or one ISO date (API)
    boxes = Question.parse({"from-day": "1", "from-month": "Dec", "from-year": "2026",
                            "to-day": "05/12/2026"})
    assert (boxes.since, boxes.until) == (date(2026, 12, 1), date(2026, 12, 5))
    assert boxes.values()["from"] == "2026-12-01"  # the export link carries ISO dates
    for bad, field in (({"child_id": "N1", "user": "ann"}, "child_id"),
                       ({"from-day": "31", "from-month": "2", "from-year": "2026"}, "from-day"),
                       ({"to-day": "3", "to-month": "12"}, "to-year"),
                       ({"from": "05/12/2026"}, "from"), ({"to": "2026-02-30"}, "to"),
                       ({"from": "2026-12-06", "to": "2026-12-05"}, "to")):
        with pytest.raises(ValidationError) as refused:
            Question.parse(bad)
        assert refused.value.field == field and str(refused.value.code) == "invalid_field"
