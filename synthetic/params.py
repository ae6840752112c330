"""The knobs of the generator: population shape and the noise rates in the feeds.

Every rate is a probability in ``[0, 1]``. "Per row" rates apply independently to
each feed row; "per child" rates to each child in one council. Defaults aim at what
council index teams report from real feeds: most rows clean, a few per cent carrying
each kind of noise that local matching and national resolution must cope with.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Params:
    """Rates for :func:`synthetic.generate_population`; override any with ``replace``."""

    # population shape (per household / per child)
    twin_rate: float = 0.05               # households of 2+ children whose first two are twins
    half_sibling_rate: float = 0.10       # multi-child households: a sibling with another surname
    double_barrelled_rate: float = 0.05   # households with a hyphenated surname
    diverse_name_rate: float = 0.12       # households with Polish/Romanian/Indian/Nigerian names
    middle_name_rate: float = 0.6         # children with other given names
    home_educated_rate: float = 0.02      # school-age children missing from the education feed
    sixth_form_rate: float = 0.75         # 16-17 year olds still on a school roll
    no_gp_rate: float = 0.02              # children missing from the health feed
    services_rate: float = 0.12           # children in the services feed (one or more rows)
    second_service_rate: float = 0.2      # of those, children with a second service
    shielded_rate: float = 0.02           # of children in the services feed
    movers_fraction: float = 0.05         # children (whole households) who moved council
    mover_surname_change_rate: float = 0.15   # moving households taking a new surname
    mover_upn_kept_rate: float = 0.5      # new council's school knows the UPN
    mover_services_boost: float = 1.5     # movers are over-represented in services

    # noise (per child in one council unless "row")
    nickname_rate: float = 0.05           # a diminutive in one feed (when the name has one)
    typo_rate: float = 0.02               # row: a typo in the given or family name
    dob_swap_rate: float = 0.005          # row: day and month swapped (day <= 12)
    surname_change_rate: float = 0.02     # child's surname changed; former name recorded
    surname_lag_rate: float = 0.5         # of those: the health feed still has the old name
    double_barrel_variant_rate: float = 0.25  # row: "Smith-Jones" as "Smith Jones" or "Jones"
    upper_case_rate: float = 0.05         # row (health): names in capitals
    stale_address_rate: float = 0.03      # child moved within the council; one feed lags
    address_abbreviation_rate: float = 0.1  # row: "Church Rd" for "Church Road"
    missing_nhs_rate: float = 0.01        # row (health): no NHS number
    services_nhs_rate: float = 0.85       # row (services): NHS number present
    missing_upn_rate: float = 0.03        # row (education): no UPN
    services_upn_rate: float = 0.5        # row (services): UPN present when the child has one
    missing_postcode_rate: float = 0.005  # row: no postcode
    postcode_format_rate: float = 0.03    # row: "bn212ab" style spacing and case
    other_names_dropped_rate: float = 0.3  # row (health): other given names left out
    sex_unknown_rate: float = 0.005       # row: sex 0 or 9
    sex_letter_rate: float = 0.1          # row (services): sex as M/F/U

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "mover_services_boost":
                if value < 0:
                    raise ValueError(f"{f.name} must be >= 0, got {value}")
            elif not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be a probability in [0, 1], got {value}")
