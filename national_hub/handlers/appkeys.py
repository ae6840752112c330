"""Typed application keys: how handlers reach the services built in create_app."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from national_hub.config import HubConfig
from national_hub.services.anti_entropy import AntiEntropy
from national_hub.services.batch_intake import BatchIntake
from national_hub.services.container import HubServices
from national_hub.services.councils import CouncilService
from national_hub.services.health import HealthService
from national_hub.services.key_rotation import KeyRotation
from national_hub.services.node_auth import NodeAuthenticator
from national_hub.services.resolver import Resolver
from national_hub.services.review import ReviewService
from national_hub.services.search import HubSearch
from national_hub.services.shielded_elsewhere import ShieldedElsewhere
from server_common.refusals import AUDIT_LOG

CONFIG = web.AppKey("config", HubConfig)
# Every service, built once (the keys below are its services, for the handlers)
SERVICES = web.AppKey("services", HubServices)
POOL = web.AppKey("pool", asyncpg.Pool)
# Searches and child views read here: a streaming replica if configured, else POOL.
READ_POOL = web.AppKey("read_pool", asyncpg.Pool)
HUB_KEY = web.AppKey("hub_key", Ed25519PrivateKey)
NODE_AUTH = web.AppKey("node_auth", NodeAuthenticator)
INTAKE = web.AppKey("intake", BatchIntake)
COUNCILS = web.AppKey("councils", CouncilService)
HEALTH = web.AppKey("health", HealthService)
ROTATION = web.AppKey("rotation", KeyRotation)
AUDIT = AUDIT_LOG  # the key server_common's middlewares find the audit log under
REVIEW = web.AppKey("review", ReviewService)
ANTI_ENTROPY = web.AppKey("anti_entropy", AntiEntropy)
SEARCH = web.AppKey("search", HubSearch)
RESOLVER = web.AppKey("resolver", Resolver)
SHIELDED_ELSEWHERE = web.AppKey("shielded_elsewhere", ShieldedElsewhere)
