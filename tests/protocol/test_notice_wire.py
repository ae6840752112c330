"""The notice wire form and the hub's pure notice decisions (docs/notices.md)."""

from __future__ import annotations

import doctest
import importlib

import pytest

from national_hub.services.notices_decide import Holder, Seen, decide
from protocol.errors import ValidationError
from protocol.notices import Notice, parse_after

ESX, WSX, TFW = "E10000011", "E10000032", "E06000020"


@pytest.mark.parametrize("module", ["protocol.notices", "national_hub.services.notices_decide"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed


def test_a_notice_naming_a_sensitive_service_is_refused_even_from_a_hub() -> None:
    wire = {"id": 1, "seq": 1, "national_id": "N1", "day": "2026-12-05", "local_ids": [],
            "shielded": False, "events": [{"kind": "new_involvement",
                                           "services": ["sexual_health"]}]}
    with pytest.raises(ValidationError, match="sensitive"):
        Notice.from_wire(wire)


@pytest.mark.parametrize("bad", ["-1", "1e3", "x", "١", "9" * 19])
def test_a_bad_cursor_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        parse_after(bad)


def test_a_merge_does_not_retell_councils_that_already_knew_each_other() -> None:
    # ESX and WSX were together on N1; N1 merges into N2, which TFW holds
    holders = {"N2": [Holder(ESX, "E1", ("school",), None), Holder(WSX, "W1", (), None),
                      Holder(TFW, "T1", ("gp",), None)]}
    seen = {(ESX, "E1"): Seen("N1", ("school",)), (WSX, "W1"): Seen("N1", ()),
            (TFW, "T1"): Seen("N2", ("gp",))}
    drafts, _ = decide([(ESX, "E1"), (WSX, "W1")], {(ESX, "E1"): "N2", (WSX, "W1"): "N2"},
                       seen, holders, {})
    told = sorted((d.recipient, d.event.council) for d in drafts)
    assert told == sorted([(ESX, TFW), (TFW, ESX), (TFW, WSX), (WSX, TFW)])


def test_a_council_alone_with_its_children_is_told_nothing() -> None:
    holders = {f"N{i}": [Holder(ESX, f"E{i}", ("school",), None)] for i in range(50)}
    touched = [(ESX, f"E{i}") for i in range(50)]
    drafts, seen = decide(touched, {(ESX, f"E{i}"): f"N{i}" for i in range(50)}, {},
                          holders, {})
    assert drafts == [] and len(seen) == 50


def test_only_a_new_kind_of_service_is_told_and_an_unknown_past_tells_nothing() -> None:
    holders = {"N1": [Holder(ESX, "E1", ("gp", "school"), None), Holder(WSX, "W1", (), None)]}
    cur = {(ESX, "E1"): "N1"}
    drafts, _ = decide([(ESX, "E1")], cur, {(ESX, "E1"): Seen("N1", ("school",))},
                       holders, {})
    assert [(d.recipient, d.event.kind, d.event.services) for d in drafts] == [
        (WSX, "new_involvement", ("gp",))]
    # services not yet known (a record from before notices existed): remembered, not told
    drafts, seen = decide([(ESX, "E1")], cur, {(ESX, "E1"): Seen("N1", None)}, holders, {})
    assert drafts == [] and seen[(ESX, "E1")].services == ("gp", "school")
