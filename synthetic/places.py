"""Where children live: per-council postcode districts, towns, phone codes and codes.

Known councils get their real postcode districts (East Sussex BN/TN, West Sussex
RH/BN/PO/GU, Telford and Wrekin TF, ...), their DfE LA number (the UPN prefix) and
their GP practice code prefix. Any other council code gets a generic English area
chosen from the code, and an LA number nobody else in the run uses.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

# Inward-code unit letters: Royal Mail never uses C, I, K, M, O or V there.
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

STREET_WORDS = (
    "Church", "Mill", "Station", "High", "Park", "London", "Victoria", "Queens", "Kings",
    "Manor", "Orchard", "Meadow", "Chapel", "School", "Windmill", "Oak", "Beech", "Elm",
    "Ash", "Willow", "Cedar", "Holly", "Rowan", "Hawthorn", "Chestnut", "Farm", "Grange",
    "Priory", "Abbey", "Castle", "Bridge", "Brook", "Spring", "Green", "Hill", "Valley",
    "Downs", "Forest", "Heath", "Common", "Market", "North", "South", "East", "West",
    "Albert", "Alexandra", "Grosvenor", "Cavendish", "Clarence", "Wellington", "Nelson",
    "Trafalgar", "Sussex", "Kent", "Windsor", "York", "Stanley", "Highfield", "Fairfield",
    "Greenfield", "Woodland", "Lime", "Sycamore", "Poplar", "Hazel", "Laurel", "Primrose",
    "Bluebell", "Foxglove", "Heather", "Kestrel", "Swallow", "Wren", "Lark", "Heron",
)
STREET_KINDS = (
    "Road", "Road", "Road", "Street", "Street", "Lane", "Lane", "Close", "Close", "Avenue",
    "Drive", "Way", "Crescent", "Gardens", "Place", "Grove", "Court", "Terrace", "Mews",
    "Rise", "View", "Walk", "Row",
)
ABBREVIATIONS = {"Road": "Rd", "Street": "St", "Avenue": "Ave", "Lane": "Ln", "Close": "Cl",
                 "Drive": "Dr", "Crescent": "Cres", "Gardens": "Gdns", "Place": "Pl"}


@dataclass(frozen=True, slots=True)
class District:
    outward: str      # "BN21"
    town: str         # "Eastbourne"
    phone_code: str   # "01323"
    weight: int = 1   # relative share of the council's households


@dataclass(frozen=True, slots=True)
class CouncilProfile:
    code: str
    name: str
    la_number: int            # DfE LA number: digits 2-4 of a UPN issued there
    districts: tuple[District, ...]
    gp_prefix: str            # GP practice ODS codes: prefix + digits, e.g. "G81"
    email_domain: str
    trust_codes: tuple[str, str]   # (community/acute trust, mental health trust) ODS codes


def _d(spec: str, town: str, phone: str, weight: int = 1) -> tuple[District, ...]:
    return tuple(District(o, town, phone, weight) for o in spec.split())


_KNOWN = {
    "E10000011": CouncilProfile(
        "E10000011", "East Sussex", 845,
        _d("BN7 BN8", "Lewes", "01273") + _d("BN9", "Newhaven", "01273")
        + _d("BN10", "Peacehaven", "01273")
        + _d("BN20 BN21 BN22 BN23", "Eastbourne", "01323", 3)
        + _d("BN24", "Pevensey", "01323") + _d("BN25", "Seaford", "01323", 2)
        + _d("BN26", "Polegate", "01323") + _d("BN27", "Hailsham", "01323", 2)
        + _d("TN5", "Wadhurst", "01892") + _d("TN6", "Crowborough", "01892", 2)
        + _d("TN21", "Heathfield", "01435") + _d("TN22", "Uckfield", "01825", 2)
        + _d("TN31", "Rye", "01797") + _d("TN33", "Battle", "01424")
        + _d("TN34 TN35", "Hastings", "01424", 3)
        + _d("TN37 TN38", "St Leonards-on-Sea", "01424", 2)
        + _d("TN39 TN40", "Bexhill-on-Sea", "01424", 2),
        "G81", "eastsussex.gov.uk", ("RXC", "RX2"),
    ),
    "E10000032": CouncilProfile(
        "E10000032", "West Sussex", 938,
        _d("RH10 RH11", "Crawley", "01293", 3) + _d("RH12 RH13", "Horsham", "01403", 2)
        + _d("RH15", "Burgess Hill", "01444", 2) + _d("RH16 RH17", "Haywards Heath", "01444")
        + _d("RH19", "East Grinstead", "01342", 2) + _d("BN5", "Henfield", "01273")
        + _d("BN6", "Hassocks", "01273") + _d("BN11 BN12 BN13 BN14", "Worthing", "01903", 3)
        + _d("BN15", "Lancing", "01903") + _d("BN16 BN17", "Littlehampton", "01903", 2)
        + _d("BN18", "Arundel", "01903") + _d("BN43", "Shoreham-by-Sea", "01273", 2)
        + _d("BN44", "Steyning", "01903") + _d("PO18 PO19 PO20", "Chichester", "01243", 2)
        + _d("PO21 PO22", "Bognor Regis", "01243", 2) + _d("GU28", "Petworth", "01798")
        + _d("GU29", "Midhurst", "01730"),
        "H82", "westsussex.gov.uk", ("RYR", "RX2"),
    ),
    "E06000020": CouncilProfile(
        "E06000020", "Telford and Wrekin", 894,
        _d("TF1", "Wellington, Telford", "01952", 3) + _d("TF2", "Oakengates, Telford", "01952", 3)
        + _d("TF3", "Telford", "01952", 3) + _d("TF4", "Dawley, Telford", "01952", 2)
        + _d("TF5", "Telford", "01952") + _d("TF6", "Telford", "01952")
        + _d("TF7", "Madeley, Telford", "01952", 2) + _d("TF8", "Ironbridge, Telford", "01952")
        + _d("TF10", "Newport", "01952", 2),
        "M82", "telford.gov.uk", ("R1D", "RRE"),
    ),
    "E06000043": CouncilProfile(
        "E06000043", "Brighton and Hove", 846,
        _d("BN1 BN2", "Brighton", "01273", 3) + _d("BN3", "Hove", "01273", 2)
        + _d("BN41", "Portslade", "01273") + _d("BN42", "Southwick", "01273"),
        "G81", "brighton-hove.gov.uk", ("RYR", "RX2"),
    ),
    "E06000051": CouncilProfile(
        "E06000051", "Shropshire", 893,
        _d("SY1 SY2 SY3", "Shrewsbury", "01743", 3) + _d("SY11", "Oswestry", "01691", 2)
        + _d("TF9", "Market Drayton", "01630") + _d("TF11", "Shifnal", "01952")
        + _d("WV16", "Bridgnorth", "01746") + _d("SY8", "Ludlow", "01584"),
        "M83", "shropshire.gov.uk", ("R1D", "RRE"),
    ),
}

# (area letters, town, phone code) for council codes we hold no real data for.
_GENERIC_AREAS = (
    ("LS", "Leeds", "0113"), ("NG", "Nottingham", "0115"), ("S", "Sheffield", "0114"),
    ("LE", "Leicester", "0116"), ("BS", "Bristol", "0117"), ("NR", "Norwich", "01603"),
    ("YO", "York", "01904"), ("DE", "Derby", "01332"), ("EX", "Exeter", "01392"),
    ("PL", "Plymouth", "01752"), ("CB", "Cambridge", "01223"), ("OX", "Oxford", "01865"),
    ("CV", "Coventry", "024"), ("M", "Manchester", "0161"), ("L", "Liverpool", "0151"),
)
# DfE LA numbers stdnum.gb.upn accepts, minus the ones the known councils use.
_SPARE_LA_NUMBERS = (
    330, 331, 332, 333, 334, 335, 336, 340, 341, 342, 343, 344, 350, 351, 352, 353, 354,
    355, 356, 357, 358, 359, 370, 371, 372, 373, 380, 381, 382, 383, 384, 390, 391, 392,
    393, 394, 800, 801, 802, 803, 805, 806, 807, 808, 810, 811, 812, 813, 815, 816, 821,
    822, 823, 825, 826, 830, 831, 835, 836, 837, 840, 841, 850, 851, 852, 855, 856, 857,
    860, 861, 865, 866, 867, 868, 869, 870, 871, 872, 873, 874, 876, 877, 878, 879, 880,
    881, 882, 883, 884, 885, 886, 887, 888, 889, 890, 891, 892, 895, 896, 908, 909, 916,
    919, 921, 925, 926, 928, 929, 931, 933, 935, 936, 937,
)


def council_profiles(codes: list[str]) -> dict[str, CouncilProfile]:
    """A profile for every code; unknown codes get distinct generic areas and LA numbers."""
    if len(set(codes)) != len(codes):
        raise ValueError("council codes must be distinct")
    used_la = {_KNOWN[c].la_number for c in codes if c in _KNOWN}
    used_gp = {_KNOWN[c].gp_prefix for c in codes if c in _KNOWN}
    profiles: dict[str, CouncilProfile] = {}
    for code in codes:
        if code in _KNOWN:
            profiles[code] = _KNOWN[code]
            continue
        if not code or not code.isalnum():
            raise ValueError(f"council code must be letters and digits, got {code!r}")
        crc = zlib.crc32(code.encode())
        area, town, phone = _GENERIC_AREAS[crc % len(_GENERIC_AREAS)]
        la = next(n for i in range(len(_SPARE_LA_NUMBERS))
                  if (n := _SPARE_LA_NUMBERS[(crc + i) % len(_SPARE_LA_NUMBERS)]) not in used_la)
        used_la.add(la)
        gp = next(p for i in range(26 * 90)
                  if (p := f"{chr(65 + (crc + i) % 26)}{10 + (crc // 26 + i) % 90}") not in used_gp)
        used_gp.add(gp)
        districts = tuple(District(f"{area}{n}", town, phone) for n in range(1, 11))
        profiles[code] = CouncilProfile(
            code, f"{town} ({code})", la, districts, gp,
            f"{town.lower()}.gov.uk", (f"R{chr(65 + crc % 26)}{crc % 10}", f"R{crc % 10}X"),
        )
    return profiles


def phone_number(code: str, digits: int) -> str:
    """``("01323", 456789)`` → ``"01323 456789"``: 11 digits in all, spaced the UK way."""
    rest = str(digits).zfill(11 - len(code))[-(11 - len(code)):]
    if len(code) == 5:
        return f"{code} {rest}"
    if len(code) == 4:
        return f"{code} {rest[:3]} {rest[3:]}"
    return f"{code} {rest[:4]} {rest[4:]}"
