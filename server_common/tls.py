"""TLS contexts: the server side from ``[tls]`` (hub and node listeners) and the client
side a node uses to check the hub's certificate against a configured CA file.

Both use the standard library's defaults (TLS 1.2 at least, certificate and host name
checks on for clients); a file that is missing or unreadable, or a key that does not
belong to its certificate, stops start-up with a ConfigError naming the file.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from server_common.config import ConfigError, TlsConfig


def server_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """The listener's context, or None when ``[tls]`` is not configured (plain HTTP)."""
    if tls.cert_file is None or tls.key_file is None:
        return None
    for setting, path in (("tls.cert_file", tls.cert_file), ("tls.key_file", tls.key_file)):
        if not path.is_file():
            raise ConfigError(f"{setting}: no such file: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as exc:  # not PEM, or the key is not the certificate's
        raise ConfigError(f"tls.cert_file {tls.cert_file} and tls.key_file {tls.key_file}: "
                          f"not a certificate chain and its matching key ({exc.reason})"
                          ) from exc
    return context


def client_context(ca_file: Path | None, setting: str = "hub.ca_file") -> ssl.SSLContext:
    """A verifying client context: trusts only ``ca_file`` when given (a private CA for
    the federation: that CA and no other), else the system's trust store. Never turns
    verification off."""
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"{setting}: no such file: {ca_file}")
    try:
        # With cafile, the system store is not loaded: only the federation's CA counts.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except ssl.SSLError as exc:
        raise ConfigError(f"{setting} {ca_file}: not a PEM CA certificate ({exc.reason})"
                          ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
