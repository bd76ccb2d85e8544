"""Every error the API answers with, and the ONE registry that maps database errors to them.

Business rules live in SQL; a function raises SQLSTATE WL00x with a JSON DETAIL, and `from_db_error` turns
that into the HTTP error of the contract. A refusal that comes as a row instead of an exception (one operation
of wallet_post_batch: its sqlstate, message, detail and field columns) goes through `from_db_fields`, which
from_db_error uses too: one registry maps both. Nothing else in the service maps database errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout


class ApiError(Exception):
    """An error answer: {"error": {"code", "message", "details"}} with an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, details: dict | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


# Every error code the API can answer with, and its HTTP status (the OpenAPI document lists the same).
API_ERRORS: dict[str, int] = {
    "INVALID_JSON": 400,
    "VALIDATION_ERROR": 400,
    "NOT_FOUND": 404,
    "WALLET_NOT_FOUND": 404,
    "ASSET_NOT_FOUND": 404,
    "TRANSACTION_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "REQUEST_TIMEOUT": 408,
    "IDEMPOTENCY_CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "INSUFFICIENT_FUNDS": 422,
    "BALANCE_LIMIT_EXCEEDED": 422,
    "REVERSAL_EXCEEDS_ORIGINAL": 422,
    "NOT_REVERSIBLE": 422,
    "HOLD_NOT_FOUND": 404,
    "HOLD_NOT_ACTIVE": 409,
    "HOLD_EXPIRED": 409,
    "CAPTURE_EXCEEDS_HOLD": 422,
    "INTERNAL_ERROR": 500,
    "CONCURRENCY_CONFLICT": 503,
    "SERVICE_UNAVAILABLE": 503,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
}


def validation_error(errors: list[dict[str, str]]) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", "the request is invalid", {"errors": errors})


def _detail(exc: psycopg.Error) -> dict[str, Any]:
    """The JSON object a wallet function put in DETAIL ({} if there is none)."""
    try:
        value = json.loads(exc.diag.message_detail or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# What the answer's details keep of a refusal: (DETAIL as a JSON object, the message, the COLUMN name) -> details
Shape = Callable[[dict[str, Any], str | None, str | None], dict]


def _pick(*keys: str) -> Shape:
    return lambda detail, _message, _field: {k: v for k, v in detail.items() if k in keys}


def _invalid_argument(detail: dict[str, Any], message: str | None, field: str | None) -> dict:
    return {
        "errors": [
            {
                "field": field or detail.get("field", ""),
                "message": detail.get("message", message or "is invalid"),
            }
        ]
    }


@dataclass(frozen=True)
class DbError:
    status: int
    code: str
    shape: Shape | None = None  # None: no details
    message: str | None = None  # None: the function's own message (it names player, asset, amounts)

    def details_of(self, detail: dict[str, Any], message: str | None, field: str | None) -> dict:
        """The answer's details, from a refusal's DETAIL (a JSON object), message and COLUMN name."""
        return self.shape(detail, message, field) if self.shape is not None else {}

    def details(self, exc: psycopg.Error) -> dict:
        """The answer's details, from a raised error."""
        return self.details_of(_detail(exc), exc.diag.message_primary, exc.diag.column_name)


# THE registry: SQLSTATE -> the contract's HTTP error.
DB_ERRORS: dict[str, DbError] = {
    "WL001": DbError(422, "INSUFFICIENT_FUNDS", _pick("asset_code", "required", "available", "held")),
    "WL002": DbError(404, "WALLET_NOT_FOUND", _pick("user_id")),
    "WL003": DbError(404, "ASSET_NOT_FOUND", _pick("asset_code")),
    "WL004": DbError(409, "IDEMPOTENCY_CONFLICT", _pick("reference_id", "transaction_id", "hold_reference_id")),
    "WL005": DbError(404, "TRANSACTION_NOT_FOUND", _pick("reference_id")),
    "WL006": DbError(400, "VALIDATION_ERROR", _invalid_argument),
    "WL007": DbError(422, "BALANCE_LIMIT_EXCEEDED", _pick("amount", "balance", "limit")),
    "WL008": DbError(500, "INTERNAL_ERROR", message="internal error"),
    "WL009": DbError(
        422,
        "REVERSAL_EXCEEDS_ORIGINAL",
        _pick("original_reference_id", "asset_code", "original_amount", "reversed", "requested"),
    ),
    "WL010": DbError(422, "NOT_REVERSIBLE", _pick("original_reference_id", "reason")),
    "WL011": DbError(404, "HOLD_NOT_FOUND", _pick("reference_id")),
    "WL012": DbError(409, "HOLD_NOT_ACTIVE", _pick("reference_id", "status", "captured_amount")),
    "WL013": DbError(409, "HOLD_EXPIRED", _pick("reference_id", "expires_at")),
    "WL014": DbError(422, "CAPTURE_EXCEEDS_HOLD", _pick("reference_id", "amount", "held")),
    # still failing after the service's own retries (see service.database)
    "55P03": DbError(503, "CONCURRENCY_CONFLICT", message="the wallet is busy; retry the request"),
    "40001": DbError(503, "CONCURRENCY_CONFLICT", message="the wallet is busy; retry the request"),
    "40P01": DbError(503, "CONCURRENCY_CONFLICT", message="the wallet is busy; retry the request"),
    # the server is going away or not yet up
    "57P01": DbError(503, "SERVICE_UNAVAILABLE", message="the database is unavailable"),
    "57P02": DbError(503, "SERVICE_UNAVAILABLE", message="the database is unavailable"),
    "57P03": DbError(503, "SERVICE_UNAVAILABLE", message="the database is unavailable"),
    # statement_timeout (service.database.session_options): the database did not answer in time
    "57014": DbError(503, "SERVICE_UNAVAILABLE", message="the database did not answer in time; retry the request"),
}

# Worth another attempt: transient conflicts, and a lost connection (every write is idempotent by its
# reference id, so re-sending one whose commit went unacknowledged answers as a replay).
RETRYABLE_SQLSTATES = frozenset({"55P03", "40001", "40P01"})
RETRY_AFTER_SECONDS = "1"


def retryable(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in RETRYABLE_SQLSTATES or connection_lost(exc)


def connection_lost(exc: BaseException) -> bool:
    """True for errors that mean 'no usable database connection' rather than 'this statement failed'."""
    if isinstance(exc, PoolTimeout):
        return False
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def from_db_error(exc: BaseException) -> ApiError:
    """The API error for a database (or pool) exception."""
    if isinstance(exc, PoolTimeout) or connection_lost(exc):
        return ApiError(
            503, "SERVICE_UNAVAILABLE", "the database is unavailable", headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    if not isinstance(exc, psycopg.Error):
        return ApiError(500, "INTERNAL_ERROR", "internal error")
    return from_db_fields(exc.sqlstate, exc.diag.message_primary, _detail(exc), exc.diag.column_name)


def from_db_fields(
    sqlstate: str | None, message: str | None, detail: dict[str, Any] | None, field: str | None
) -> ApiError:
    """The API error for a refusal given by its parts: SQLSTATE, primary message, DETAIL (the JSON object a
    wallet function put there; anything else counts as none) and COLUMN name. An unknown SQLSTATE is 500."""
    spec = DB_ERRORS.get(sqlstate or "")
    if spec is None:
        return ApiError(500, "INTERNAL_ERROR", "internal error")
    details = spec.details_of(detail if isinstance(detail, dict) else {}, message, field)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if spec.status == 503 else {}
    return ApiError(spec.status, spec.code, spec.message or message or spec.code.lower(), details, headers)
