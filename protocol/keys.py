"""Ed25519 keys: generation, PEM files and key ids.

A key id (``kid``) is the first 16 bytes of SHA-256 over the raw 32-byte public
key, in hex. It is only a hint for finding the key; verification always uses the
enrolled public key itself.

Every public key that enters the system (an operator's enrolment, a rotation
announcement, a key file in the config) goes through :func:`load_public_key`,
which refuses non-canonical encodings and small- or mixed-order points
(``weak_key``, see :mod:`protocol.ed25519_points`): with such a key enrolled,
signatures could be forged without any private key.

    >>> key = generate()
    >>> len(key_id(key.public_key()))
    32
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import ed25519_points
from protocol.errors import ErrorCode, ValidationError

_KID = re.compile(r"[0-9a-f]{32}")


class WeakKeyError(ValidationError):
    """A public key that is not a canonical encoding of a prime-order Ed25519 point."""

    code = ErrorCode.WEAK_KEY

    def __init__(self, field: str, why: str) -> None:
        super().__init__(field, f"is not an acceptable Ed25519 public key: {why}")
        self.detail["reason"] = why


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(public_key)).digest()[:16].hex()


def is_key_id(value: object) -> bool:
    """True for text of a key id's form (32 lower-case hex), the only text that can name
    an enrolled key.

    >>> is_key_id(key_id(generate().public_key())), is_key_id("a\\x00")
    (True, False)
    """
    return isinstance(value, str) and _KID.fullmatch(value) is not None


def public_from_raw(raw: bytes) -> Ed25519PublicKey:
    """A stored raw key (already checked when it entered); still refused if weak, so a
    key enrolled before the check existed cannot verify anything (the check is cached)."""
    return Ed25519PublicKey.from_public_bytes(check_public_raw(raw))


def check_public_raw(raw: bytes, source: str = "public key") -> bytes:
    """``raw`` if it is a canonical, prime-order Ed25519 public key; else WeakKeyError."""
    why = ed25519_points.weakness(bytes(raw))
    if why is not None:
        raise WeakKeyError(source, why)
    return raw


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write the private key (owner-only) and its public half beside it, each
    atomically: a reader in another process sees the old file or the new one, never
    part of one. The private file goes last: it is the one that counts."""
    write_atomically(public_path_for(path), public_pem(key.public_key()), 0o644)
    write_atomically(path, private_pem(key), 0o600)


def load_or_create_private_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The key in ``path``; if there is none, a new one written there. Returns the key
    and whether this call created it.

    Safe when several processes start at once on a fresh directory (two hub
    processes): the new file is linked into place only if ``path`` is still absent,
    so exactly one key is ever created and every other caller loads that one. Before,
    a second process could read the first one's half-written file, or write its own
    key over it and then sign with a key no file holds."""
    if not path.exists():
        key = generate()
        if create_once(path, private_pem(key), 0o600):
            write_atomically(public_path_for(path), public_pem(key.public_key()), 0o644)
            return key, True
    key = load_private_key(path)
    if not public_path_for(path).exists():  # its creator stopped before writing it
        write_atomically(public_path_for(path), public_pem(key.public_key()), 0o644)
    return key, False


def create_once(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` holding ``data`` (whole, flushed to disk) unless it exists.
    Returns whether this call created it; if another process got there first, its
    file stands. Readers never see a partial file: it is written in full under another
    name, then linked into place (a link, unlike a rename, never replaces a file)."""
    tmp = _durable_temp(path, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    sync_directory(path.parent)
    return True


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file, flush it to disk, rename it over ``path``
    and flush the directory: after a crash ``path`` holds the old or the new bytes."""
    tmp = _durable_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def _durable_temp(path: Path, data: bytes, mode: int) -> Path:
    """``data`` in a new file beside ``path`` (a name no other process or thread uses),
    flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def sync_directory(directory: Path) -> None:
    """Flush a directory's entries to disk: a file renamed or linked into it survives a
    crash."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def public_path_for(private_path: Path) -> Path:
    return private_path.with_name(private_path.stem + ".pub.pem")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationError(str(path), "is not an Ed25519 private key")
    # A seed always gives a prime-order public key; checked anyway, as every key is.
    check_public_raw(raw_public(key.public_key()), str(path))
    return key


def load_public_key(data: bytes, source: str = "public key") -> Ed25519PublicKey:
    """The one loader for public keys: PEM (or raw 32 bytes), Ed25519, and canonical
    and of prime order (else WeakKeyError, ``weak_key``)."""
    try:
        if len(data) == 32:
            key: object = Ed25519PublicKey.from_public_bytes(data)
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValidationError(source, "is not a PEM public key",
                              code=ErrorCode.INVALID_FIELD) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValidationError(source, "is not an Ed25519 public key")
    check_public_raw(raw_public(key), source)
    return key


def verify(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
