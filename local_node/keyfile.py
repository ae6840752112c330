"""The council's signing key on disk: read when it changes, written atomically.

``local-node keys rotate`` replaces the key file while a publisher may be running
in another process. Writers never modify the file in place: they write a temporary
file beside it and rename it over the old one, so a reader sees the old key or the
new key, never half of one. Readers (:class:`KeyFile`) stat the file before each
use and load it again when it changed, so a running publisher signs with the new
key from its next batch or request on, without a restart.

Files, next to ``council_key.pem`` (the configured ``council.key_file``):

- ``council_key.pem`` / ``council_key.pub.pem``: the key in use and its public half;
- ``council_key.next.pem``: a key being rotated in, not yet confirmed by the hub;
- ``council_key.<kid>.pem``: a retired key, kept for history (and to go back to).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import keys
from protocol.errors import SignpostError

log = logging.getLogger(__name__)

KeySource = Callable[[], Ed25519PrivateKey]


def as_key_source(key: Ed25519PrivateKey | KeySource) -> KeySource:
    """A fixed key, or something that returns the current key, as the latter."""
    if isinstance(key, Ed25519PrivateKey):
        return lambda: key
    return key


def pending_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.stem + ".next.pem")


def archive_path(key_path: Path, kid: str) -> Path:
    return key_path.with_name(f"{key_path.stem}.{kid}.pem")


class KeyFile:
    """The signing key in ``path``, loaded again whenever the file is replaced.

    Call the object (or :meth:`current`) for the key to sign with now. A stat per
    call costs microseconds, far less than the signature it precedes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._key: Ed25519PrivateKey | None = None
        self._kid = ""

    def __call__(self) -> Ed25519PrivateKey:
        return self.current()

    def current(self) -> Ed25519PrivateKey:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._stamp or self._key is None:
                key = keys.load_private_key(self.path)
                kid = keys.key_id(key.public_key())
                if self._key is not None and kid != self._kid:
                    log.info("signing key changed", extra={"old_kid": self._kid, "kid": kid})
                self._key, self._kid, self._stamp = key, kid, stamp
        except (OSError, ValueError, SignpostError):
            # Files are only ever renamed into place, so this is an operator's doing
            # (a file moved away, say): keep signing with the key we have, if any.
            if self._key is None:
                raise
            log.warning("cannot read the key file; still using the loaded key",
                        exc_info=True, extra={"path": str(self.path)})
        assert self._key is not None
        return self._key

    @property
    def kid(self) -> str:
        """The kid of the current key."""
        self.current()
        return self._kid
