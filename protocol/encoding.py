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


def _refuse_timestamp(value: Any) -> None:
    # msgpack decodes extension -1 (timestamp) itself and never calls ext_hook for it.
    if isinstance(value, msgpack.Timestamp):
        raise DecodeError("msgpack extension type -1 is not allowed",
                          code=ErrorCode.MALFORMED_MSGPACK)


def _map(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Build a map, refusing duplicate keys: with them two readers of the same
    signed bytes could see different values (one keeps the first, one the last).
    Keys are always str in this protocol; a bin key is refused too.

    Written with C-level builtins (dict, set, map): it runs for every map of every
    record, so a Python loop here costs a visible share of the hub's throughput."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[Any] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DecodeError(f"duplicate map key {dup!r}", code=ErrorCode.MALFORMED_MSGPACK)
    if set(map(type, out)) - _STR_ONLY:
        raise DecodeError("map keys must be str", code=ErrorCode.MALFORMED_MSGPACK)
    if msgpack.Timestamp in set(map(type, out.values())):
        _refuse_timestamp(msgpack.Timestamp(0))
    return out


_STR_ONLY = {str}


def _array(items: list[Any]) -> list[Any]:
    if msgpack.Timestamp in set(map(type, items)):
        _refuse_timestamp(msgpack.Timestamp(0))
    return items


def unpack(data: bytes, *, what: str = "message") -> Any:
    """Unpack untrusted bytes; any malformation becomes a DecodeError.

    Limits stop a small message from asking for a huge allocation, and extension
    types (timestamps, custom objects) are refused: the protocol uses none. Map
    keys must be str and unique.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError(f"{what} is larger than {MAX_MESSAGE_BYTES} bytes",
                          code=ErrorCode.PAYLOAD_TOO_LARGE, status=413)
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_refuse_ext,
            object_pairs_hook=_map,
            list_hook=_array,
        )
        _refuse_timestamp(obj)
        return obj
    except DecodeError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        # ExtraData, FormatError, StackError and UnicodeDecodeError are ValueErrors.
        raise DecodeError(f"{what} is not valid msgpack: {type(exc).__name__}") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
