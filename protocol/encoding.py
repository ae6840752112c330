"""Strict msgpack encoding.

msgpack is not canonical: the same map can be packed to different bytes. The
protocol therefore never re-serialises a signed object; signatures and digests
cover the exact bytes that were sent and stored (see ``signing``). These helpers
only pack fresh objects and unpack received bytes defensively.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

from protocol.errors import DecodeError, ErrorCode

# A batch of 5,000 full records is ~3 MB; 16 MiB leaves room without inviting abuse.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def pack(obj: Any) -> bytes:
    """Pack with str as msgpack str and bytes as bin (use_bin_type)."""
    return msgpack.packb(obj, use_bin_type=True, datetime=False)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} is not allowed",
                      code=ErrorCode.MALFORMED_MSGPACK)


def unpack(data: bytes, *, what: str = "message") -> Any:
    """Unpack untrusted bytes; any malformation becomes a DecodeError.

    Limits stop a small message from asking for a huge allocation, and extension
    types (timestamps, custom objects) are refused: the protocol uses none.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError(f"{what} is larger than {MAX_MESSAGE_BYTES} bytes",
                          code=ErrorCode.PAYLOAD_TOO_LARGE, status=413)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_refuse_ext,
        )
    except DecodeError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        # ExtraData, FormatError, StackError and UnicodeDecodeError are ValueErrors.
        raise DecodeError(f"{what} is not valid msgpack: {type(exc).__name__}") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
