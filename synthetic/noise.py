"""The rows a child appears in, the noise each row carries, and rows made bad on purpose.

Noise never makes a row invalid (those are only the requested ``bad_rows``) and never
makes one twin's row show the other twin's given name: the truth must stay
resolvable in principle.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date

from synthetic.dice import Dice
from synthetic.model import Appearance, BadRow, Presence
from synthetic.names import NamePools, typo
from synthetic.params import Params
from synthetic.places import ABBREVIATIONS

BAD_KINDS = ("nhs_check_digit", "bad_date", "bad_sex", "missing_family_name")
BAD_COLUMNS = {"nhs_check_digit": "nhs_number", "bad_date": "dob", "bad_sex": "sex",
               "missing_family_name": "family_name"}
_SEX_LETTERS = {"0": "U", "1": "M", "2": "F", "9": "9"}  # "not specified" has no letter


def abbreviate(address_line: str) -> str:
    for word, short in ABBREVIATIONS.items():
        if f" {word}," in address_line:
            return address_line.replace(f" {word},", f" {short},", 1)
    return address_line


def shown(a: Appearance, column: str) -> str:
    """What the row shows in an identity column, noise included."""
    if a.overrides and column in a.overrides:
        return a.overrides[column]
    p = a.presence
    person = p.person
    if column == "given_name":
        return person.given_name
    if column == "family_name":
        return p.family_name
    if column == "nhs_number":
        return person.nhs_number
    if column == "sex":
        return str(person.sex)
    if column == "dob":
        return person.dob.isoformat()
    raise KeyError(column)


class NoiseMaker:
    def __init__(self, rng: Dice, params: Params, pools: NamePools, today: date,
                 new_address: Callable[[str], tuple[str, str]]) -> None:
        self.rng = rng
        self.p = params
        self.pools = pools
        self.today = today
        self.new_address = new_address

    def appearances(self, presence: Presence) -> list[Appearance]:
        rows = []
        if presence.school is not None:
            rows.append(Appearance(presence, "education"))
        if presence.practice is not None:
            rows.append(Appearance(presence, "health"))
        rows.extend(Appearance(presence, "services", inv) for inv in presence.services)
        presence.appearances = rows
        if rows:
            self._per_child(presence, rows)
            for a in rows:
                self._per_row(a)
        return rows

    def _twin_clash(self, presence: Presence, name: str) -> bool:
        low = name.lower()
        return any(low == t.lower() for t in presence.person.twin_names)

    def _per_child(self, presence: Presence, rows: list[Appearance]) -> None:
        rng, p = self.rng, self.p
        person = presence.person
        if presence.former_family_name and rng.random() < p.surname_lag_rate:
            for a in rows:
                if a.feed == "health":
                    a.override("family_name", presence.former_family_name, "surname_lag")
        if rng.random() < p.stale_address_rate:
            a = rng.pick(rows)
            line, postcode = self.new_address(presence.council)
            if a.feed != "services":
                a.override("address_line", line)
            a.override("postcode", postcode, "stale_address")
        if rng.random() < p.nickname_rate:
            options = [n for n in self.pools.diminutives_of(person.given_name)
                       if not self._twin_clash(presence, n)]
            if options:
                rng.pick(rows).override("given_name", rng.pick(options), "nickname")

    def _per_row(self, a: Appearance) -> None:
        rng, p = self.rng, self.p
        presence = a.presence
        person = presence.person
        feed = a.feed
        if rng.random() < p.typo_rate:
            column = "given_name" if rng.random() < 0.6 else "family_name"
            before = shown(a, column)
            after = typo(rng, before)
            if after != before and not (column == "given_name" and self._twin_clash(presence,
                                                                                   after)):
                a.override(column, after, "typo")
        family = shown(a, "family_name")
        if "-" in family and rng.random() < p.double_barrel_variant_rate:
            first, second = family.split("-", 1)
            a.override("family_name", rng.pick((f"{first} {second}", first, second)),
                       "double_barrel")
        if feed == "health" and rng.random() < p.upper_case_rate:
            a.override("given_name", shown(a, "given_name").upper())
            a.override("family_name", shown(a, "family_name").upper(), "upper_case")
        if rng.random() < p.dob_swap_rate:
            dob = person.dob
            if dob.day <= 12 and dob.day != dob.month:
                swapped = date(dob.year, dob.day, dob.month)
                if swapped <= self.today:
                    a.override("dob", swapped.isoformat(), "dob_swap")
        if rng.random() < p.sex_unknown_rate:
            a.override("sex", rng.pick(("0", "9")), "sex_unknown")
        if feed == "services" and rng.random() < p.sex_letter_rate:
            a.override("sex", _SEX_LETTERS[shown(a, "sex")])
        self._identifiers(a)
        if feed != "services" and rng.random() < p.address_abbreviation_rate:
            line = a.overrides.get("address_line") if a.overrides else None
            short = abbreviate(line or presence.address_line)
            if short != (line or presence.address_line):
                a.override("address_line", short)
        if feed == "health" and person.other_given_names and (
                rng.random() < p.other_names_dropped_rate):
            a.override("other_given_names", "")
        if rng.random() < p.missing_postcode_rate:
            a.override("postcode", "", "no_postcode")
        elif rng.random() < p.postcode_format_rate:
            postcode = (a.overrides or {}).get("postcode") or presence.postcode
            a.override("postcode", rng.pick((postcode.lower(), postcode.replace(" ", ""))))

    def _identifiers(self, a: Appearance) -> None:
        rng, p = self.rng, self.p
        if a.feed == "education":
            if a.presence.upn and rng.random() < p.missing_upn_rate:
                a.override("upn", "", "no_upn")
        elif a.feed == "health":
            if rng.random() < p.missing_nhs_rate:
                a.override("nhs_number", "", "no_nhs")
        else:
            if rng.random() >= p.services_nhs_rate:
                a.override("nhs_number", "", "no_nhs")
            if a.presence.upn and rng.random() >= p.services_upn_rate:
                a.override("upn", "", "no_upn")


def make_bad_rows(feeds: dict[tuple[str, str], list[Appearance]], count: int,
                  rng: random.Random) -> list[BadRow]:
    """Spoil ``count`` rows, cycling through :data:`BAD_KINDS`; return what was spoiled."""
    if count <= 0:
        return []
    flat = [(key, line, a) for key, rows in feeds.items() for line, a in enumerate(rows, 2)]
    if count > len(flat):
        raise ValueError(f"asked for {count} bad rows but the feeds hold only {len(flat)}")
    used: set[int] = set()
    bad = []
    for i in range(count):
        kind = BAD_KINDS[i % len(BAD_KINDS)]
        for _ in range(10_000):
            pick = rng.randrange(len(flat))
            (council, feed), line, a = flat[pick]
            if pick in used or (kind == "nhs_check_digit" and (
                    feed == "education" or not shown(a, "nhs_number"))):
                continue
            break
        else:
            raise ValueError(f"found no row to spoil with {kind}")
        used.add(pick)
        column = BAD_COLUMNS[kind]
        if kind == "nhs_check_digit":
            good = shown(a, "nhs_number")
            value = good[:9] + str((int(good[9]) + rng.randrange(1, 10)) % 10)
        elif kind == "bad_date":
            dob = a.presence.person.dob
            value = f"{dob.year}-02-30" if (i // 4) % 2 else dob.strftime("%d/%m/%Y")
        elif kind == "bad_sex":
            value = "X"
        else:
            value = ""
        a.override(column, value, f"bad:{kind}")
        bad.append(BadRow(council, feed, a.source_ref, line, column, kind, value))
    return bad
