"""Typed application keys: how the node's handlers reach what create_app built."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from local_node.config import NodeConfig
from local_node.services.container import NodeServices
from local_node.services.review import ReviewService
from local_node.services.search import SearchService
from server_common.accounts.principal import Principal

# (who, action, purpose, parameters, child ids) → written to the audit log, or raises
Auditor = Callable[[Principal, str, str, dict[str, Any], list[str]], Awaitable[None]]

POOL = web.AppKey("pool", asyncpg.Pool)
CONFIG = web.AppKey("config", NodeConfig)
SEARCH = web.AppKey("search", SearchService)
REVIEW = web.AppKey("review", ReviewService)  # the index team's decisions, audited
# Every service, built once (SEARCH and REVIEW are its own, for the handlers)
SERVICES = web.AppKey("services", NodeServices)
AUDIT: web.AppKey[Auditor] = web.AppKey("audit")
