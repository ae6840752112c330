"""Typed configuration: one frozen dataclass per section, TOML file plus env overrides.

Values come, in increasing priority, from the dataclass defaults, a TOML file,
and environment variables named ``{PREFIX}__{SECTION}__{KEY}`` (for example
``NATIONAL_HUB__DATABASE__URL``). Every value is converted to the field's type
and checked at start-up; a bad value stops the process with a message naming it.
Durations are strings such as ``"300s"``, ``"5m"``, ``"2h"`` or ``"7d"``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message names it."""


class Duration(float):
    """Seconds, written in config as ``"30s"``, ``"5m"``, ``"2h"``, ``"1d"``."""

    @classmethod
    def parse(cls, value: Any, where: str) -> Duration:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return cls(value)
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{where}: not a duration like '30s' or '5m': {value!r}")
        return cls(float(match.group(1)) * _UNITS[match.group(2)])


@dataclasses.dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Where PostgreSQL is. With no url, an embedded server runs in ``embedded_dir``."""

    url: str | None = None
    # A streaming replica of ``url`` for reads that may lag a little (the hub's search
    # and child views). Writes, and reads that must see their own writes, use ``url``.
    read_url: str | None = None
    embedded_dir: Path = Path(".data/pg")
    name: str = ""  # database name in the embedded server; each server sets its own default
    pool_min: int = 2
    pool_max: int = 10


@dataclasses.dataclass(frozen=True, slots=True)
class TlsConfig:
    """HTTPS for a server's listener (``[tls]``): a PEM certificate chain and its key.
    With neither set the server speaks plain HTTP (the demo, tests, or behind a proxy
    that terminates TLS); setting one without the other is a mistake, not a choice."""

    cert_file: Path | None = None  # the server's certificate, then any intermediates
    key_file: Path | None = None  # its private key (PEM, unencrypted: read at start-up)

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("tls.cert_file and tls.key_file must be set together "
                              f"(cert_file={self.cert_file}, key_file={self.key_file})")

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


@dataclasses.dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # Bodies of people's requests (forms, JSON): small. The hub's node-protocol
    # endpoints have their own cap, sized to the largest batch (hub.max_node_body_bytes).
    max_body_bytes: int = 1024 * 1024
    # Proxies (addresses or networks, comma-separated: "10.0.0.5, 10.1.0.0/16") whose
    # X-Forwarded-For names the client. Only these: anyone can write that header, and
    # rate limits and the audit log key callers by their address.
    trusted_proxies: str = ""

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ConfigError("server.max_body_bytes must be at least 1")
        if not 0 <= self.port < 65536:  # 0: any free port
            raise ConfigError("server.port must be a TCP port")
        self.proxy_networks()  # fail at start-up, not at the first request

    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        try:
            return tuple(ipaddress.ip_network(part.strip(), strict=False)
                         for part in self.trusted_proxies.split(",") if part.strip())
        except ValueError as exc:
            raise ConfigError(f"server.trusted_proxies: {exc}") from exc


def _convert(value: Any, typ: Any, where: str) -> Any:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or value == "":
            return None
        return _convert(value, args[0], where)
    if typ is Duration:
        return Duration.parse(value, where)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if typ is int:
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from exc
    if typ is float:
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from exc
    if typ is Path:
        return Path(str(value))
    if typ is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported type {typ!r}")


def _build(cls: type[T], values: dict[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in values:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown setting")
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in values:
            continue
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            if not isinstance(values[f.name], dict):
                raise ConfigError(f"{where}.{f.name}: expected a section")
            kwargs[f.name] = _build(typ, values[f.name], f"{where}.{f.name}")  # type: ignore[arg-type]
        else:
            kwargs[f.name] = _convert(values[f.name], typ, f"{where}.{f.name}")
    return cls(**kwargs)


def load(cls: type[T], prefix: str, path: Path | None = None,
         overrides: dict[str, dict[str, Any]] | None = None,
         environ: typing.Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from defaults, the TOML file, the environment, then ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    env = os.environ if environ is None else environ
    marker = prefix.upper() + "__"
    for name, raw in env.items():
        if not name.startswith(marker):
            continue
        parts = name[len(marker):].lower().split("__")
        if len(parts) != 2:
            raise ConfigError(f"{name}: expected {marker}SECTION__KEY")
        values.setdefault(parts[0], {})[parts[1]] = raw
    for section, entries in (overrides or {}).items():
        for key, value in entries.items():
            if value is not None:
                values.setdefault(section, {})[key] = value
    return _build(cls, values, prefix.lower())
