"""Stable error codes shared by node and hub, and the one exception base.

Every refusal the federation can give has a code from :class:`ErrorCode`, an
HTTP status and a ``retryable`` flag. Only retryable errors are retried by a
node's publisher; everything else needs a human (or a different request).

Exception tree::

    SignpostError                    (status, code, message, retryable, detail)
     ├── ValidationError             400, a field failed a check
     ├── DecodeError                 400, bytes are not valid msgpack / not the shape expected
     ├── AuthError                   401/403, request or envelope signature refused
     ├── ConflictError               409, seq gap or fork
     ├── NotFoundError               404
     ├── TooLargeError               413
     ├── RateLimitedError            429, retryable after ``retry_after`` seconds
     └── UnavailableError            503, retryable (database down, shutting down)

Third-party exceptions are converted at the boundary (by class or SQLSTATE)
and re-raised ``from exc``; code never matches on message text.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # request shape
    MALFORMED_REQUEST = "malformed_request"
    MALFORMED_MSGPACK = "malformed_msgpack"
    INVALID_FIELD = "invalid_field"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_TIMEOUT = "request_timeout"  # the body did not arrive in time (408)
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    # request authentication
    AUTH_MISSING = "auth_missing"
    AUTH_BAD_SIGNATURE = "auth_bad_signature"
    AUTH_STALE_TIMESTAMP = "auth_stale_timestamp"
    AUTH_REPLAYED_NONCE = "auth_replayed_nonce"
    AUTH_ORIGIN_MISMATCH = "auth_origin_mismatch"
    UNKNOWN_COUNCIL = "unknown_council"
    UNKNOWN_KEY = "unknown_key"
    KEY_WRONG_COUNCIL = "key_wrong_council"
    KEY_REVOKED = "key_revoked"
    KEY_EXPIRED = "key_expired"
    WEAK_KEY = "weak_key"  # not a canonical, prime-order Ed25519 public key
    # envelope and batch
    ENVELOPE_BAD_SIGNATURE = "envelope_bad_signature"
    ENVELOPE_WRONG_TYPE = "envelope_wrong_type"
    BATCH_WRONG_COUNCIL = "batch_wrong_council"
    SEQ_GAP = "seq_gap"
    PREV_MISMATCH = "prev_mismatch"
    FORK = "fork"
    COUNCIL_FLAGGED = "council_flagged"
    # key announcements (rotation)
    ANNOUNCEMENT_BAD_SIGNATURE = "announcement_bad_signature"
    ANNOUNCEMENT_WRONG_COUNCIL = "announcement_wrong_council"
    ANNOUNCEMENT_WRONG_KEY = "announcement_wrong_key"
    # per-record results (inside a receipt, not HTTP errors)
    INVALID_RECORD = "invalid_record"
    STALE_VERSION = "stale_version"
    # national identity resolution (national_hub)
    REVIEW_DECIDED = "review_decided"
    # a link that merges children whose records hold different NHS numbers or UPNs,
    # asked without the person's confirmation that they checked
    IDENTIFIER_CONFLICT = "identifier_conflict"
    TOO_FEW_RECORDS = "too_few_records"  # a model cannot be trained from so few records
    # audit witnesses (docs/audit.md): a cosignature that does not verify, or names a
    # checkpoint the hub never signed
    COSIGNATURE_INVALID = "cosignature_invalid"
    UNKNOWN_CHECKPOINT = "unknown_checkpoint"
    # people: accounts, logins, sessions (server_common.accounts)
    NOT_AUTHENTICATED = "not_authenticated"
    FORBIDDEN = "forbidden"
    CSRF_FAILED = "csrf_failed"
    LOCKED_OUT = "locked_out"  # no longer sent: accounts are not locked (see LOGIN_THROTTLED)
    LOGIN_THROTTLED = "login_throttled"  # too many failures from this address (and name)
    LOGIN_BUSY = "login_busy"  # too many password hashes at once; retry shortly
    WEAK_PASSWORD = "weak_password"
    LOGIN_FAILED = "login_failed"
    USER_EXISTS = "user_exists"
    UNKNOWN_USER = "unknown_user"
    # the node's own view of its connection (never sent by a hub)
    TLS_UNTRUSTED = "tls_untrusted"
    # server side
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class SignpostError(Exception):
    """Base of every error the federation reports to a peer or a user."""

    status: int = 400
    code: ErrorCode = ErrorCode.MALFORMED_REQUEST
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.detail = detail or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": str(self.code),
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.detail:
            body["detail"] = self.detail
        return body

    @classmethod
    def from_dict(cls, status: int, body: dict[str, Any]) -> SignpostError:
        """Rebuild an error a peer sent (used by the node's transport client)."""
        try:
            code = ErrorCode(str(body.get("code")))
        except ValueError:
            code = ErrorCode.INTERNAL
        return SignpostError(
            str(body.get("message", "")),
            code=code,
            status=status,
            retryable=bool(body.get("retryable", False)),
            detail=body.get("detail") if isinstance(body.get("detail"), dict) else None,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


class ValidationError(SignpostError):
    status = 400
    code = ErrorCode.INVALID_FIELD

    def __init__(self, field: str, reason: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(f"{field}: {reason}", code=code, detail={"field": field})
        self.field = field
        self.reason = reason


class DecodeError(SignpostError):
    status = 400
    code = ErrorCode.MALFORMED_MSGPACK


class AuthError(SignpostError):
    status = 401
    code = ErrorCode.AUTH_BAD_SIGNATURE


class ConflictError(SignpostError):
    status = 409
    code = ErrorCode.SEQ_GAP


class NotFoundError(SignpostError):
    status = 404
    code = ErrorCode.NOT_FOUND


class TooLargeError(SignpostError):
    status = 413
    code = ErrorCode.PAYLOAD_TOO_LARGE


class RateLimitedError(SignpostError):
    status = 429
    code = ErrorCode.RATE_LIMITED
    retryable = True

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, detail={"retry_after": retry_after})
        self.retry_after = retry_after


class UnavailableError(SignpostError):
    status = 503
    code = ErrorCode.UNAVAILABLE
    retryable = True
