"""``audit unseal``, the same at the hub and the node: open the location parameters a
search entry holds sealed (``sealing``) for an investigation, audited first."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import click

from server_common import cli as common
from server_common.audit.entry import Actor
from server_common.audit.service import AuditLog, AuditRecord


def unseal_command(audit_log: Callable[[Any], AbstractAsyncContextManager[AuditLog]],
                   actor: Callable[[Any], Actor]) -> click.Command:
    """The command, given how a CLI's context object opens its audit log and whom it
    audits the opening as."""
    @click.command("unseal", help="Open the sealed parameters of audit entry SEQ (where a "
                                  "search whose answer held a shielded child looked) for an "
                                  "investigation, and print the entry as JSON. The opening "
                                  "is audited first, with --reason, under the children the "
                                  "entry was about.")
    @click.argument("seq", type=common.SEQ)
    @click.option("--reason", required=True,
                  help="Why the entry is opened (the audit log records it).")
    @click.pass_obj
    def unseal(obj: Any, seq: int, reason: str) -> None:
        async def go() -> AuditRecord:
            async with audit_log(obj) as log:
                return await log.unseal(seq, actor(obj), reason)

        click.echo(json.dumps(common.run(go()).to_dict(), ensure_ascii=False, indent=2))

    return unseal
