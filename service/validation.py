"""Shape and type checks of requests: every problem found becomes one {field, message} of a 400.

Only shape and types are checked here; whether a wallet, asset or balance allows the request is decided
by the SQL functions.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from service import docs
from service.api_errors import ApiError, validation_error
from service.cursor import decode_cursor
from service.limits import HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, MAX_AMOUNT, MAX_ID_LENGTH, MAX_OFFSET

IDEMPOTENCY_HEADER = "Idempotency-Key"

# operation -> the field of its own it takes. Whether that field is required is the contract's word: the
# OpenAPI document's request schema says it, the SQL function enforces it for every caller (WL006 "is
# required"), and tests/api/test_openapi.py checks that the two agree.
OPERATION_FIELDS: dict[str, str] = {
    "topup": "payment_method",
    "bonus": "bonus_type",
    "spend": "item_id",
}


@functools.cache
def operation_field_required(operation: str) -> bool:
    """Whether the document's request body of POST /wallets/{operation} requires the operation's field."""
    document = docs.spec()
    schema = document["paths"][f"/wallets/{operation}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    while "$ref" in schema:  # a local reference: #/components/schemas/Name
        target = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return OPERATION_FIELDS[operation] in schema.get("required", [])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (400 INVALID_JSON otherwise; 413 past the body limit)."""
    raw = await request.read()
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError, absurd nesting
        raise ApiError(400, "INVALID_JSON", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_JSON", "the request body must be a JSON object")
    return body


UNSTORABLE = "must not contain NUL (\\u0000) or unpaired surrogate (\\ud800-\\udfff) characters"


def storable(text: str) -> bool:
    """PostgreSQL text and jsonb hold neither NUL nor unpaired UTF-16 surrogates (JSON can spell both)."""
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


def storable_json(value: Any) -> bool:
    """Every string of a parsed JSON value, object keys included, is storable."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return all(storable(k) and storable_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(storable_json(v) for v in value)
    return True


class FieldErrors:
    """Collects every problem of one request, then raises them together."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def raise_any(self) -> None:
        if self.items:
            raise validation_error(self.items)

    def ident(self, field: str, value: Any, required: bool = True) -> str | None:
        """A non-empty string of at most MAX_ID_LENGTH characters (None when optional and absent)."""
        if value is None:
            if required:
                self.add(field, "is required")
            return None
        if not isinstance(value, str):
            self.add(field, "must be a string")
        elif not 1 <= len(value) <= MAX_ID_LENGTH:
            self.add(field, f"must be a non-empty string of at most {MAX_ID_LENGTH} characters")
        elif not storable(value):
            self.add(field, UNSTORABLE)
        else:
            return value
        return None

    def amount(self, field: str, value: Any) -> int | None:
        """A JSON integer from 1 to MAX_AMOUNT: not a boolean, float or string."""
        if value is None:
            self.add(field, "is required")
        elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_AMOUNT:
            self.add(field, f"must be an integer from 1 to {MAX_AMOUNT}")
        else:
            return value
        return None

    def unknown(self, names: list[str] | set[str], allowed: set[str], what: str) -> None:
        for name in sorted(set(names) - allowed):
            self.add(name, f"is not a known {what}")


def posting(operation: str, body: dict[str, Any], headers: MultiMapping[str]) -> dict[str, Any]:
    """The arguments of wallet_topup / wallet_bonus / wallet_spend, from a validated body, by field name."""
    op_field = OPERATION_FIELDS[operation]
    problems = FieldErrors()
    problems.unknown(list(body), {"user_id", "asset_code", "amount", "reference_id", op_field, "metadata"}, "field")
    args: dict[str, Any] = {
        "user_id": problems.ident("user_id", body.get("user_id")),
        "asset_code": problems.ident("asset_code", body.get("asset_code")),
        "amount": problems.amount("amount", body.get("amount")),
        op_field: problems.ident(op_field, body.get(op_field), required=operation_field_required(operation)),
    }
    header = headers.get(IDEMPOTENCY_HEADER)
    key = problems.ident(IDEMPOTENCY_HEADER, header, required=False)
    reference_id = problems.ident("reference_id", body.get("reference_id"), required=header is None)
    if key is not None and reference_id is not None and key != reference_id:
        problems.add("reference_id", f"differs from the {IDEMPOTENCY_HEADER} header")
    args["reference_id"] = reference_id if reference_id is not None else key
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.add("metadata", "must be a JSON object")
    elif metadata is not None and not storable_json(metadata):
        problems.add("metadata", UNSTORABLE)
    args["metadata"] = metadata
    problems.raise_any()
    return args


def _single(query: MultiMapping[str], name: str, problems: FieldErrors) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        problems.add(name, "must be given once")
        return None
    return values[0] if values else None


def _integer(problems: FieldErrors, name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and low <= int(raw) <= high:
        return int(raw)
    problems.add(name, f"must be an integer from {low} to {high}")
    return default


def user_id(problems: FieldErrors, value: str) -> str | None:
    return problems.ident("user_id", value)


def balance_query(user: str, query: MultiMapping[str]) -> dict[str, Any]:
    problems = FieldErrors()
    problems.unknown(list(query), {"asset_code"}, "query parameter")
    args = {
        "user_id": user_id(problems, user),
        "asset_code": problems.ident("asset_code", _single(query, "asset_code", problems), required=False),
    }
    problems.raise_any()
    return args


def history_query(user: str, query: MultiMapping[str]) -> dict[str, Any]:
    problems = FieldErrors()
    problems.unknown(list(query), {"asset_code", "limit", "offset", "cursor"}, "query parameter")
    args = {
        "user_id": user_id(problems, user),
        "asset_code": problems.ident("asset_code", _single(query, "asset_code", problems)),
        "limit": _integer(
            problems, "limit", _single(query, "limit", problems), HISTORY_DEFAULT_LIMIT, 1, HISTORY_MAX_LIMIT
        ),
        "offset": _integer(problems, "offset", _single(query, "offset", problems), 0, 0, MAX_OFFSET),
        "before": None,
    }
    cursor = _single(query, "cursor", problems)
    if cursor is not None:
        args["before"] = decode_cursor(cursor)
        if args["before"] is None:
            problems.add("cursor", "is not a cursor this service returned")
    problems.raise_any()
    return args


def reference(value: str) -> str:
    problems = FieldErrors()
    ref = problems.ident("reference_id", value)
    problems.raise_any()
    assert ref is not None
    return ref
