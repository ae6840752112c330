"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the
notice email tests and bench.notices."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

from aiosmtpd.controller import Controller


class Inbox:
    """What the SMTP server received: (when, recipients, message bytes)."""

    def __init__(self) -> None:
        self.mail: list[tuple[float, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mail.append((time.monotonic(), list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[tuple[float, bytes]]:
        return [(t, m) for t, rcpt, m in self.mail if address in rcpt]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()
