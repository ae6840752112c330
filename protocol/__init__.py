"""Signpost wire protocol: pure Python, no aiohttp or asyncpg.

Modules:
    errors       stable error codes and the one exception base
    identifiers  NHS number, UPN, postcode, sex code and date checks
    records      the minimal identity record and involvement pointer
    encoding     strict msgpack encode/decode
    signing      DSSE-style envelopes (Ed25519 over PAE of exact bytes)
    keys         Ed25519 key files and key ids
    batch        batches, ops, the hash chain and hub receipts
    request_auth signatures over node requests
    matching     identity comparisons, Fellegi–Sunter scoring, blocking keys (shared
                 by local matching at a node and national resolution at the hub)
"""
