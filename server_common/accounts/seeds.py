"""TOTP seeds sealed at rest: AES-256-GCM with a key kept in a file, not the database.

A database dump, a replica or a backup alone then reveals no second factor. The key
file (``accounts.secret_key_file``) holds 32 random bytes, base64, and is created
with mode 0600 at first start when missing, as the hub's signing key is. The user's
name is the associated data: a sealed seed copied onto another user's row does not
open.

    >>> box = SeedBox(bytes(32))
    >>> sealed = box.seal("asha", "JBSWY3DPEHPK3PXP")
    >>> box.open("asha", sealed)
    'JBSWY3DPEHPK3PXP'
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol import keys
from protocol.errors import ErrorCode, UnavailableError
from server_common.config import ConfigError

_VERSION = b"\x01"  # first byte of every sealed seed: the format, for a future change
_NONCE = 12


class SeedBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the accounts secret key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, name: str, seed: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, seed.encode("ascii"),
                                                    _associated(name))

    def open(self, name: str, sealed: bytes) -> str:
        """The seed; a 503 if it does not open (the key file was changed or lost)."""
        try:
            if sealed[:1] != _VERSION:
                raise InvalidTag
            nonce, body = sealed[1:1 + _NONCE], sealed[1 + _NONCE:]
            return self._aead.decrypt(nonce, body, _associated(name)).decode("ascii")
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise UnavailableError("a TOTP seed cannot be opened with the configured "
                                   "accounts.secret_key_file", code=ErrorCode.UNAVAILABLE,
                                   retryable=False) from exc


def _associated(name: str) -> bytes:
    return b"signpost totp seed\x00" + name.encode("utf-8")


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path``, made (owner-only, never overwritten) if the file is missing."""
    if not path.exists():  # two processes starting at once keep the first one's key
        keys.create_once(path, base64.b64encode(secrets.token_bytes(32)) + b"\n", 0o600)
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (OSError, binascii.Error) as exc:
        raise ConfigError(f"accounts.secret_key_file {path}: cannot read a base64 key: "
                          f"{exc}") from exc
    if len(key) != 32:
        raise ConfigError(f"accounts.secret_key_file {path}: the key must be 32 bytes")
    return key
