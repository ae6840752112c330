"""Schools, GP practices and services of one council, and the professionals in them."""

from __future__ import annotations

import random
from dataclasses import dataclass

from synthetic.dice import Weighted
from synthetic.names import NamePools
from synthetic.places import CouncilProfile, District, phone_number

PRIMARY_KINDS = ("Primary School", "Primary School", "Primary Academy", "Infant School",
                 "CofE Primary School", "Community Primary School", "Junior School")
SECONDARY_KINDS = ("Academy", "Community College", "School", "High School",
                   "Church of England Academy", "College")
SAINTS = ("St Mary's", "St John's", "St Peter's", "St Andrew's", "St Michael's", "St Paul's",
          "St Thomas", "Holy Trinity", "All Saints", "Christ Church", "St Catherine's")
GP_KINDS = ("Surgery", "Medical Centre", "Medical Practice", "Health Centre", "Family Practice")


@dataclass(frozen=True, slots=True)
class School:
    urn: str          # 6 digits
    estab: int        # DfE establishment number: digits 5-8 of a UPN issued here
    name: str
    phone: str
    secondary: bool


@dataclass(frozen=True, slots=True)
class Practice:
    ods_code: str     # "G81042"
    name: str
    phone: str


@dataclass(frozen=True, slots=True)
class ServiceKind:
    service_type: str
    name: str             # "{council} ..." filled in per council
    role: str
    min_age: int
    max_age: int
    weight: int
    nhs: int              # 0 council-run, 1 community/acute trust, 2 mental health trust
    lead_rate: float
    caf_rate: float


SERVICE_KINDS = (
    ServiceKind("early_help", "{council} Early Help Keywork Service", "Early Help Keyworker",
                0, 17, 28, 0, 0.6, 0.85),
    ServiceKind("social_care", "{council} Children's Social Care", "Social Worker",
                0, 17, 22, 0, 0.7, 0.3),
    ServiceKind("health_visiting", "Health Visiting Service", "Health Visitor",
                0, 4, 15, 1, 0.15, 0.1),
    ServiceKind("school_nursing", "School Nursing Service", "School Nurse",
                5, 17, 6, 1, 0.05, 0.05),
    ServiceKind("camhs", "Child and Adolescent Mental Health Service", "CAMHS Practitioner",
                5, 17, 9, 2, 0.1, 0.1),
    ServiceKind("send", "{council} SEND Assessment and Planning", "SEND Caseworker",
                2, 17, 8, 0, 0.2, 0.2),
    ServiceKind("youth_justice", "{council} Youth Justice Service", "Youth Justice Officer",
                10, 17, 3, 0, 0.3, 0.2),
    ServiceKind("sexual_health", "Young People's Sexual Health Service", "Sexual Health Nurse",
                13, 17, 3, 1, 0.0, 0.0),
    ServiceKind("mental_health", "Young People's Mental Health Service",
                "Mental Health Practitioner", 11, 17, 3, 2, 0.0, 0.0),
    ServiceKind("substance_misuse", "{council} Young People's Substance Misuse Service",
                "Substance Misuse Worker", 12, 17, 2, 0, 0.0, 0.0),
)


@dataclass(frozen=True, slots=True)
class Professional:
    name: str
    phone: str
    email: str


@dataclass(frozen=True, slots=True)
class Service:
    kind: ServiceKind
    name: str
    organisation_code: str
    professionals: tuple[Professional, ...]


class CouncilOrganisations:
    """Every school, practice and service a council's children can be attached to."""

    def __init__(self, profile: CouncilProfile, children: int, rng: random.Random,
                 pools: NamePools, used_urns: set[int], used_ods: set[str]) -> None:
        self.profile = profile
        districts = profile.districts
        n_primary = max(2, round(children * 7 / 18 / 300))
        n_secondary = max(1, round(children * 7 / 18 / 1000))
        self.primaries = tuple(
            self._school(rng, districts, 2001 + i, False, used_urns) for i in range(n_primary))
        self.secondaries = tuple(
            self._school(rng, districts, 4001 + i, True, used_urns) for i in range(n_secondary))
        self.practices = tuple(
            self._practice(rng, districts, pools, used_ods)
            for _ in range(max(2, round(children / 1600))))
        per_service = max(2, children // 2000)
        self.services = Weighted([self._service(rng, kind, pools, per_service)
                                  for kind in SERVICE_KINDS],
                                 [kind.weight for kind in SERVICE_KINDS])

    @staticmethod
    def _school(rng: random.Random, districts: tuple[District, ...], estab: int,
                secondary: bool, used_urns: set[int]) -> School:
        district = rng.choice(districts)
        town = district.town.split(",")[0]
        kind = rng.choice(SECONDARY_KINDS if secondary else PRIMARY_KINDS)
        if rng.random() < 0.2:
            stem = rng.choice(SAINTS)
        elif rng.random() < 0.5:
            stem = f"{town} {rng.choice(('Park', 'Hill', 'Downs', 'Valley', 'Meadows'))}"
        else:
            stem = f"{rng.choice(('Oak', 'Beacon', 'Castle', 'Priory', 'Grove', 'Manor'))}"
        while (urn := rng.randrange(100000, 150000)) in used_urns:
            pass
        used_urns.add(urn)
        phone = phone_number(district.phone_code, rng.randrange(10**9))
        return School(str(urn), estab, f"{stem} {kind}", phone, secondary)

    def _practice(self, rng: random.Random, districts: tuple[District, ...],
                  pools: NamePools, used_ods: set[str]) -> Practice:
        district = rng.choice(districts)
        while (code := f"{self.profile.gp_prefix}{rng.randrange(1000):03d}") in used_ods:
            pass
        used_ods.add(code)
        if rng.random() < 0.3:
            name = f"The {rng.choice(pools.adults.surnames)} Practice"
        else:
            town = district.town.split(",")[0]
            name = f"{town} {rng.choice(GP_KINDS)}"
        return Practice(code, name, phone_number(district.phone_code, rng.randrange(10**9)))

    def _service(self, rng: random.Random, kind: ServiceKind, pools: NamePools,
                 size: int) -> Service:
        profile = self.profile
        code = profile.code if kind.nhs == 0 else profile.trust_codes[kind.nhs - 1]
        domain = profile.email_domain if kind.nhs == 0 else "nhs.net"
        people = []
        seen: set[str] = set()
        for _ in range(size):
            given = rng.choice(pools.adults.girls if rng.random() < 0.75 else pools.adults.boys)
            family = rng.choice(pools.adults.surnames)
            local = "".join(c for c in f"{given}.{family}".lower() if c.isascii()
                            and (c.isalpha() or c in ".-"))
            while local in seen:
                local += str(rng.randrange(10))
            seen.add(local)
            # Ofcom's drama range: synthetic mobiles never ring a real person.
            people.append(Professional(f"{given} {family}",
                                       f"07700 900{rng.randrange(1000):03d}",
                                       f"{local}@{domain}"))
        return Service(kind, kind.name.format(council=profile.name), code, tuple(people))
