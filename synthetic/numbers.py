"""NHS numbers and UPNs for synthetic children: valid, unique and never a real child's.

Both check digits are weighted digit sums, computed here three digits at a time from
tables (stdnum's functions go one character at a time, 3-14 µs a number, seconds at
246,000 children). The tests check every number emitted with ``stdnum.gb.nhs`` and
``stdnum.gb.upn``.
"""

from __future__ import annotations

from synthetic.dice import Dice

# Weighted sums of three digits at a time: the NHS number's first 9 digits carry weights
# 10..2 (modulus 11); a UPN's 12 digits carry weights 2..13 (modulus 23).
_NHS_WEIGHTS = [
    [sum(int(d) * w for d, w in zip(f"{n:03d}", weights, strict=True)) for n in range(1000)]
    for weights in ((10, 9, 8), (7, 6, 5), (4, 3, 2))
]
_UPN_WEIGHTS = [
    [sum(int(d) * w for d, w in zip(f"{n:03d}", weights, strict=True)) for n in range(1000)]
    for weights in ((2, 3, 4), (5, 6, 7), (8, 9, 10), (11, 12, 13))
]
_UPN_CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"


def upn_check_letter(body: str) -> str:
    """Check letter for a 12-digit UPN body, as ``stdnum.gb.upn.calc_check_digit``
    (a digit's value in its alphabet is 23 + digit, and 23 vanishes modulo 23)."""
    n = int(body)
    return _UPN_CHECK_LETTERS[(
        _UPN_WEIGHTS[0][n // 10**9] + _UPN_WEIGHTS[1][n // 10**6 % 1000]
        + _UPN_WEIGHTS[2][n // 1000 % 1000] + _UPN_WEIGHTS[3][n % 1000]) % 23]


class NumberIssuer:
    """Hands out NHS numbers and UPNs, each at most once per population."""

    def __init__(self, rng: Dice) -> None:
        self.rng = rng
        self.nhs_used: set[str] = set()
        self.upn_serials: dict[tuple[int, int, int], int] = {}

    def nhs_number(self) -> str:
        """From the 9xx block, which is never issued to patients; mod-11 check digit."""
        while True:
            body = self.rng.between(900_000_000, 1_000_000_000)
            total = (_NHS_WEIGHTS[0][body // 1_000_000] + _NHS_WEIGHTS[1][body // 1000 % 1000]
                     + _NHS_WEIGHTS[2][body % 1000])
            check = (11 - total % 11) % 11
            if check == 10:
                continue  # no valid number has this body: never emit it
            number = f"{body}{check}"
            if number not in self.nhs_used:
                self.nhs_used.add(number)
                return number

    def upn(self, la_number: int, estab: int, year: int) -> str:
        """Check letter, LA number, DfE establishment number, year of issue, serial."""
        key = (la_number, estab, year % 100)
        serial = self.upn_serials.get(key, 0) + 1
        if serial > 999:
            raise RuntimeError(f"more than 999 UPNs for one school and year: {key}")
        self.upn_serials[key] = serial
        body = f"{la_number:03d}{estab:04d}{year % 100:02d}{serial:03d}"
        return upn_check_letter(body) + body
