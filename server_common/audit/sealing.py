"""Where a search looked, sealed in its audit entry when the answer holds a shielded child.

The audit log records what every search asked (docs/design.md §6), and auditors read
it. When a search's answer holds a shielded child, the postcode it was given is often
the child's own (an index team looking up the child it shields, or someone who knows
where the child lives): written in clear, subject access would show an auditor where
a shielded child lives. So the location parameters of such an entry (the postcode, and
the UPN, whose first digits name the authority that issued it) are written sealed,
padded to one length: AES-256-GCM under a key derived from the accounts key file (HKDF, its own
label, so the TOTP seeds' key is never used for anything else), the parameter's name
as associated data, as ``sealed:`` and lower-case hex. The entry still says that a
postcode was given, and the Merkle leaf covers the sealed text, so proofs and
witnesses work unchanged. ``audit unseal SEQ --reason`` (hub and node) opens an
entry's sealed parameters for an investigation, and is itself audited.

    >>> seal = ParameterSeal(bytes(32))
    >>> asked = seal.where_shielded({"given_name": "Lily", "postcode": "BN2 3CD"}, True)
    >>> asked["given_name"], asked["postcode"][:7]
    ('Lily', 'sealed:')
    >>> seal.opened(asked)
    {'given_name': 'Lily', 'postcode': 'BN2 3CD'}
    >>> seal.where_shielded({"postcode": "BN2 3CD"}, False)
    {'postcode': 'BN2 3CD'}
    >>> {len(seal.where_shielded({"postcode": p}, True)["postcode"])
    ...  for p in ("N1 1AA", "TN22 1AA")}
    {127}
"""

from __future__ import annotations

import binascii
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.errors import ErrorCode, UnavailableError
from server_common.accounts.seeds import load_or_create_key

# The search parameters that say where a child lives (docs/design.md §6: never shown
# for a shielded child): the postcode, and the UPN, whose first digits name the authority
# that issued it (protocol.disclosure.LOCATION_FIELDS). Names and dates are who the
# child is, and stay readable.
LOCATION_PARAMETERS = frozenset({"postcode", "upn"})
PREFIX = "sealed:"
_NONCE = 12
# A value is padded with NULs (which no parameter holds) to a multiple of this many bytes
# before it is sealed: every postcode and UPN seals to one length, where the length of
# "N1 1AA", "BN2 3CD" or "TN22 1AA" sealed as it is would narrow its district.
_PAD = 32
_LABEL = b"signpost audit location parameters v1"


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


class ParameterSeal:
    def __init__(self, accounts_key: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=_LABEL).derive(accounts_key)
        self._aead = AESGCM(key)

    @classmethod
    def from_key_file(cls, path: Path) -> ParameterSeal:
        """The seal for the accounts key in ``path`` (made, owner-only, when missing)."""
        return cls(load_or_create_key(path))

    def where_shielded(self, parameters: Mapping[str, Any], shielded: bool,
                       ) -> dict[str, Any]:
        """``parameters`` as the audit entry records them: location ones sealed when
        the answer holds a shielded child, everything as given otherwise."""
        return {name: self._seal(name, value)
                if shielded and name in LOCATION_PARAMETERS and isinstance(value, str)
                else value for name, value in parameters.items()}

    def opened(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """``parameters`` with every sealed value opened; a 503 if one does not open
        (the key file was changed or lost, or the text was altered)."""
        return {name: self._open(name, value) if is_sealed(value) else value
                for name, value in parameters.items()}

    def _seal(self, name: str, value: str) -> str:
        nonce = secrets.token_bytes(_NONCE)
        plain = value.encode("utf-8")
        padded = plain.ljust(max(1, -(-len(plain) // _PAD)) * _PAD, b"\x00")
        body = self._aead.encrypt(nonce, padded, _associated(name))
        return PREFIX + (nonce + body).hex()

    def _open(self, name: str, text: str) -> str:
        try:
            raw = bytes.fromhex(text[len(PREFIX):])
            # sealed before values were padded: no padding to take off
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:],
                                      _associated(name)).rstrip(b"\x00").decode("utf-8")
        except (ValueError, InvalidTag, binascii.Error, UnicodeDecodeError) as exc:
            raise UnavailableError(
                f"the sealed parameter {name!r} cannot be opened with the configured "
                "accounts.secret_key_file", code=ErrorCode.UNAVAILABLE,
                retryable=False) from exc


def _associated(name: str) -> bytes:
    return b"signpost audit parameter\x00" + name.encode("utf-8")
