"""Building the population: households, movers, schools, GPs and services.

Everything is drawn from one seeded ``random.Random`` (:class:`Dice`) in a fixed order (and Faker
seeded with the same seed), so a seed and a ``today`` give the same population
byte for byte. Nothing iterates a set or an unordered dict while drawing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, timedelta

from tqdm import tqdm

from protocol.records import SENSITIVE_SERVICE_TYPES
from server_common.gc_pause import paused_gc
from synthetic import noise
from synthetic.dice import Dice, Weighted
from synthetic.model import (
    FEEDS,
    Appearance,
    Person,
    Population,
    Presence,
    ServiceInvolvement,
)
from synthetic.names import LocalePools, NamePools
from synthetic.numbers import NumberIssuer
from synthetic.organisations import CouncilOrganisations, Practice, School
from synthetic.params import Params
from synthetic.places import (
    STREET_KINDS,
    STREET_WORDS,
    UNIT_LETTERS,
    CouncilProfile,
    council_profiles,
)

HOUSEHOLD_SIZES = Weighted((1, 2, 3, 4, 5), (45, 35, 14, 5, 1))
HOUSE_NAMES = ("Rose Cottage", "The Old Rectory", "Orchard House", "Meadow View", "Hillside",
               "The Coach House", "Ivy Cottage", "Woodlands", "The Barn", "Sunnyside")
@functools.cache
def _september(year: int) -> date:
    return date(year, 9, 1)  # one shared object per year: 246,000 children start on few days


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def age_on(dob: date, day: date) -> int:
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


@dataclass(slots=True, eq=False)
class Household:
    pools: LocalePools
    surname: str
    children: list[Person] = field(default_factory=list)
    # council → (primary, secondary, practice) the household uses there
    orgs: dict[str, tuple[School, School, Practice]] = field(default_factory=dict)


class Generator:
    def __init__(self, councils: list[str], children: int, seed: int, params: Params,
                 today: date, progress: bool) -> None:
        if children < 0:
            raise ValueError("children_per_council must be >= 0")
        self.councils = list(councils)
        self.children = children
        self.seed = seed
        self.params = params
        self.today = today
        self.progress = progress
        self.rng = Dice(seed)
        self.pools = NamePools(seed)
        self.profiles = council_profiles(self.councils)
        used_urns: set[int] = set()
        used_ods: set[str] = set()
        self.orgs = {c: CouncilOrganisations(self.profiles[c], children, self.rng, self.pools,
                                             used_urns, used_ods) for c in self.councils}
        self.units = {c: self._postcode_units(self.profiles[c]) for c in self.councils}
        self.addresses: dict[str, set[str]] = {c: set() for c in self.councils}
        self.dob_span = (today - add_years(today, -18)).days  # 0-17 years old today
        self.persons: list[Person] = []
        self.households: dict[str, list[Household]] = {c: [] for c in self.councils}
        self.numbers = NumberIssuer(self.rng)

    # -- places -----------------------------------------------------------------------

    def _postcode_units(self, profile: CouncilProfile) -> list[tuple[str, str, str]]:
        """(postcode, street, town): a postcode covers a stretch of one street."""
        rng = self.rng
        count = max(20, self.children // 8)
        districts = Weighted(profile.districts, [d.weight for d in profile.districts])
        seen: set[str] = set()
        units = []
        for _ in range(count):
            district = districts.draw(rng)
            for _ in range(10):
                postcode = (f"{district.outward} {rng.below(10)}"
                            f"{rng.pick(UNIT_LETTERS)}{rng.pick(UNIT_LETTERS)}")
                if postcode not in seen:
                    seen.add(postcode)
                    street = f"{rng.pick(STREET_WORDS)} {rng.pick(STREET_KINDS)}"
                    units.append((postcode, street, district.town))
                    break
        return units

    def address(self, council: str) -> tuple[str, str]:
        rng = self.rng
        units = self.units[council]
        taken = self.addresses[council]
        for _ in range(20):
            postcode, street, town = rng.pick(units)
            roll = rng.random()
            if roll < 0.04:
                line = f"{rng.pick(HOUSE_NAMES)}, {street}, {town}"
            elif roll < 0.12:
                line = f"Flat {rng.between(1, 30)}, {rng.between(1, 200)} {street}, {town}"
            else:
                line = f"{rng.between(1, 160)} {street}, {town}"
            if line not in taken:
                break
        taken.add(line)
        return line, postcode

    # -- households -------------------------------------------------------------------

    def household_orgs(self, council: str) -> tuple[School, School, Practice]:
        orgs = self.orgs[council]
        rng = self.rng
        return rng.pick(orgs.primaries), rng.pick(orgs.secondaries), rng.pick(orgs.practices)

    def build_council(self, council: str, bar: tqdm) -> None:
        rng, p = self.rng, self.params
        remaining = self.children
        while remaining > 0:
            size = min(remaining, HOUSEHOLD_SIZES.draw(rng))
            if rng.random() < p.diverse_name_rate:
                pools = self.pools.diverse.draw(rng)
            else:
                pools = self.pools.english
            surname = rng.pick(pools.surnames)
            if rng.random() < p.double_barrelled_rate:
                other = rng.pick(self.pools.english.surnames)
                if other != surname:
                    surname = f"{surname}-{other}"
            household = Household(pools, surname)
            household.orgs[council] = self.household_orgs(council)
            address_line, postcode = self.address(council)
            twins = size >= 2 and rng.random() < p.twin_rate
            for i, dob in enumerate(self._dobs(size, twins)):
                person = self._child(household, dob)
                family, former = surname, None
                if twins and i == 1:
                    family, former = household.children[0].presences[0].family_name, (
                        household.children[0].presences[0].former_family_name)  # as one
                else:
                    if i > 0 and rng.random() < p.half_sibling_rate:
                        family = rng.pick(pools.surnames)
                    if rng.random() < p.surname_change_rate:
                        family, former = rng.pick(self.pools.english.surnames), family
                        if family == former:
                            former = None
                person.presences = [Presence(person, council, family, address_line, postcode,
                                             former_family_name=former)]
                household.children.append(person)
            if twins:
                a, b = household.children[0], household.children[1]
                a.twin_names, b.twin_names = (b.given_name,), (a.given_name,)
            self.households[council].append(household)
            remaining -= len(household.children)
            bar.update(len(household.children))

    def _dobs(self, size: int, twins: bool) -> list[date]:
        rng = self.rng
        dobs: list[date] = []
        for _ in range(30):
            if len(dobs) == size:
                break
            dob = self.today - timedelta(days=rng.below(self.dob_span))
            if all(abs((dob - other).days) >= 300 for other in dobs):
                dobs.append(dob)
        if twins and len(dobs) >= 2:
            dobs[1] = dobs[0]
        return dobs

    def _child(self, household: Household, dob: date) -> Person:
        """A child whose given name is unlike every sibling's (so twins' never match)."""
        rng, pools = self.rng, household.pools
        sex = 1 if rng.random() < 0.512 else 2
        names = pools.boys if sex == 1 else pools.girls
        siblings = [c.given_name for c in household.children]
        given = rng.pick(names)
        for _ in range(30):
            if not siblings or not any(self.pools.related(given, s) for s in siblings):
                break
            given = rng.pick(names)
        else:
            given = f"{given}-{rng.pick(names)}"  # never two children of one name in a home
        other = None
        if rng.random() < self.params.middle_name_rate:
            other = rng.pick(names)
            if rng.random() < 0.15:
                other = f"{other} {rng.pick(names)}"
            if given in other.split():
                other = None
        person = Person(len(self.persons) + 1, given, other, sex, dob, self.numbers.nhs_number())
        self.persons.append(person)
        return person

    # -- movers -----------------------------------------------------------------------

    def move_households(self) -> None:
        rng, p = self.rng, self.params
        if len(self.councils) < 2 or p.movers_fraction == 0:
            return
        for council in self.councils:
            target = round(p.movers_fraction * self.children)
            candidates = list(self.households[council])
            rng.shuffle(candidates)
            moved = 0
            for household in candidates:
                if moved >= target:
                    break
                youngest = min((self.today - c.dob).days for c in household.children)
                if youngest < 75:
                    continue
                move_date = self.today - timedelta(
                    days=rng.between(14, min(4 * 365, youngest - 30)))
                dest = rng.pick([c for c in self.councils if c != council])
                household.orgs[dest] = self.household_orgs(dest)
                address_line, postcode = self.address(dest)
                new_surname = None
                if rng.random() < p.mover_surname_change_rate:
                    new_surname = rng.pick(self.pools.english.surnames)
                for person in household.children:
                    old = person.presences[0]
                    old.moved_out = move_date
                    family, former = old.family_name, old.former_family_name
                    if new_surname and new_surname != family:
                        family, former = new_surname, (family if rng.random() < 0.6 else None)
                    person.presences.append(Presence(
                        person, dest, family, address_line, postcode,
                        former_family_name=former, moved_in=move_date))
                moved += len(household.children)

    # -- school, GP and services ------------------------------------------------------

    def attach(self, household: Household, person: Person) -> None:
        rng, p, today = self.rng, self.params, self.today
        reception_year = person.dob.year + (5 if person.dob.month >= 9 else 4)
        reception = date(reception_year, 9, 1)
        if reception <= today:
            issuer = person.presences[0]
            if len(person.presences) > 1 and issuer.moved_out and reception >= issuer.moved_out:
                issuer = person.presences[1]
            person.upn = self.numbers.upn(self.profiles[issuer.council].la_number,
                                          household.orgs[issuer.council][0].estab,
                                          reception_year)
            for presence in person.presences:
                if presence is issuer:
                    presence.upn = person.upn
                elif presence.moved_in is not None and rng.random() < p.mover_upn_kept_rate:
                    presence.upn = person.upn  # the new school got the pupil's records
                # else: the child left this council before starting school here
        for presence in person.presences:
            primary, secondary, practice = household.orgs[presence.council]
            until = presence.moved_out or today
            self._education(presence, reception_year, until, primary, secondary)
            if rng.random() >= p.no_gp_rate:
                presence.practice = practice
                if presence.moved_in:
                    start = presence.moved_in + timedelta(days=rng.below(60))
                else:
                    start = person.dob + timedelta(days=rng.between(10, 70))
                presence.registered_from = min(start, until)
                presence.registered_to = presence.moved_out
            self._services(presence, until)

    def _education(self, presence: Presence, reception_year: int, until: date,
                   primary: School, secondary: School) -> None:
        rng, p = self.rng, self.params
        academic_year = until.year if until.month >= 9 else until.year - 1
        year_group = academic_year - reception_year
        if year_group < 0 or rng.random() < p.home_educated_rate:
            return
        if year_group >= 12 and rng.random() >= p.sixth_form_rate:
            return
        phase_start = _september(reception_year + (7 if year_group >= 7 else 0))
        presence.school = secondary if year_group >= 7 else primary
        start = phase_start
        if presence.moved_in and presence.moved_in > phase_start:
            start = min(presence.moved_in + timedelta(days=rng.below(21)), until)
        presence.school_start = start
        presence.school_end = presence.moved_out

    def _services(self, presence: Presence, until: date) -> None:
        rng, p = self.rng, self.params
        person = presence.person
        rate = p.services_rate * (p.mover_services_boost if len(person.presences) > 1 else 1)
        if rng.random() >= rate:
            return
        age = age_on(person.dob, until)
        services = self.orgs[presence.council].services
        wanted = 2 if rng.random() < p.second_service_rate else 1
        chosen: list[ServiceInvolvement] = []
        for _ in range(6):
            if len(chosen) == wanted:
                break
            service = services.draw(rng)
            kind = service.kind
            if not kind.min_age <= age <= kind.max_age or any(
                    s.service is service for s in chosen):
                continue
            earliest = max(person.dob, add_years(person.dob, kind.min_age),
                           presence.moved_in or person.dob, add_years(until, -3))
            if earliest > until:
                continue
            start = earliest + timedelta(days=rng.below((until - earliest).days + 1))
            end = presence.moved_out
            if end is None and rng.random() < 0.3:
                end = start + timedelta(days=rng.below((self.today - start).days + 1))
            chosen.append(ServiceInvolvement(
                service, rng.pick(service.professionals), start, end,
                lead=rng.random() < kind.lead_rate, caf=rng.random() < kind.caf_rate,
                consent=((rng.random() < 0.5) if kind.service_type in SENSITIVE_SERVICE_TYPES
                         else None),
            ))
        presence.services = tuple(chosen)
        presence.shielded = bool(chosen) and rng.random() < p.shielded_rate

    # -- the whole run ----------------------------------------------------------------

    def run(self, bad_rows: int) -> Population:
        with paused_gc():
            return self._run(bad_rows)

    def _run(self, bad_rows: int) -> Population:
        total = self.children * len(self.councils)
        with tqdm(total=total, desc="generating", unit="child", disable=not self.progress,
                  leave=False) as bar:
            for council in self.councils:
                self.build_council(council, bar)
        self.move_households()
        feeds: dict[tuple[str, str], list[Appearance]] = {
            (c, f): [] for c in self.councils for f in FEEDS}
        maker = noise.NoiseMaker(self.rng, self.params, self.pools, self.today, self.address)
        for council in self.councils:
            for household in self.households[council]:
                for person in household.children:
                    self.attach(household, person)
                    for presence in person.presences:
                        for appearance in maker.appearances(presence):
                            feeds[(presence.council, appearance.feed)].append(appearance)
        for rows in feeds.values():
            self.rng.shuffle(rows)  # file order is source_ref order, unrelated to households
            for ref, appearance in enumerate(rows, 1):
                appearance.ref = ref
        bad = noise.make_bad_rows(feeds, bad_rows, self.rng)
        return Population(tuple(self.councils), self.children, self.seed, self.today,
                          self.params, self.persons, feeds, bad)
