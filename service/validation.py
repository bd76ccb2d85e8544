"""Shape and type checks of requests: every problem found becomes one {field, message} of a 400.

Only shape and types are checked here; whether a wallet, asset or balance allows the request is decided
by the SQL functions.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import math
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from service import docs
from service.api_errors import ApiError, validation_error
from service.cursor import decode_cursor
from service.limits import (
    BODY_TIMEOUT_SECONDS,
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
    MAX_AMOUNT,
    MAX_BODY_BYTES,
    MAX_HOLD_SECONDS,
    MAX_ID_LENGTH,
    MAX_METADATA_DEPTH,
    MAX_METADATA_ITEMS,
    MAX_OFFSET,
    MAX_PRICE_LEGS,
)

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


# The one Content-Type a request body may have: application/json, optionally with charset=utf-8 (JSON is
# UTF-8: RFC 8259), case-insensitive, nothing else (no other parameter, no second charset, no second header).
_JSON_CONTENT_TYPE = re.compile(r'application/json(?:[ \t]*;[ \t]*charset=(?:utf-8|"utf-8"))?[ \t]*', re.IGNORECASE)


def require_json_content_type(request: web.BaseRequest) -> None:
    """415 UNSUPPORTED_MEDIA_TYPE unless the request has exactly one Content-Type, and it is JSON.

    Checked before the body is read, so before its size (413) and its arrival time (408)."""
    values = request.headers.getall("Content-Type", [])
    if len(values) != 1 or not _JSON_CONTENT_TYPE.fullmatch(values[0]):
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "the request body must be JSON: Content-Type: application/json (charset utf-8 if any)",
        )


class _NotAccepted(ValueError):
    """A JSON text that Python would parse but the contract refuses (duplicate key, non-finite number)."""


def _reject_constant(name: str) -> Any:
    raise _NotAccepted(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    """A JSON number with a fraction or exponent, as a float; one out of float's range (1e400) is refused
    rather than read as infinity, which neither JSON nor PostgreSQL's jsonb can hold."""
    value = float(text)
    if not math.isfinite(value):
        raise _NotAccepted(f"the number {text[:40]} is out of range")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: a proxy or firewall that reads the first of two equal keys must
    not see another request than the service, which would otherwise read the last one."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NotAccepted(f"the key {json.dumps(key[:MAX_ID_LENGTH])} appears twice in one object")
            seen.add(key)
    return value


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, unique keys in every object at any depth, finite numbers only (no NaN, Infinity
    or 1e400). ApiError 400 INVALID_JSON otherwise."""
    try:
        return json.loads(
            raw.decode("utf-8"), object_pairs_hook=_object, parse_float=_finite, parse_constant=_reject_constant
        )
    except _NotAccepted as exc:
        raise ApiError(400, "INVALID_JSON", f"the request body is not acceptable JSON: {exc}") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError, absurd nesting, huge integers
        raise ApiError(400, "INVALID_JSON", "the request body is not valid JSON") from None


def size_text(size: int) -> str:
    """A byte count as the contract states limits: 64 KiB, 1 MiB."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def payload_too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {size_text(max_bytes)}")


async def _read_body(request: web.Request, max_bytes: int) -> bytes:
    """The whole body: 408 if it does not arrive within BODY_TIMEOUT_SECONDS, 413 past max_bytes, 400 if its
    framing is broken.

    The app's client_max_size (aiohttp's limit of request.read(), one for the whole app) is MAX_BODY_BYTES; a
    route with another limit reads through a clone of the request that has its own."""
    if max_bytes != request.client_max_size:
        request = request.clone(client_max_size=max_bytes)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise payload_too_large(max_bytes) from None
    except TimeoutError:
        raise ApiError(
            408,
            "REQUEST_TIMEOUT",
            f"the request body did not arrive within {BODY_TIMEOUT_SECONDS:g} seconds",
            headers={"Connection": "close"},
        ) from None
    except web.RequestPayloadError:  # broken chunked encoding, a body shorter than its Content-Length...
        raise ApiError(
            400,
            "INVALID_JSON",
            "the request body could not be read (malformed framing or encoding)",
            headers={"Connection": "close"},
        ) from None


def _as_object(raw: bytes) -> dict[str, Any]:
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_JSON", "the request body must be a JSON object")
    return body


async def json_object(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a JSON object: 415 if it is not declared JSON, 408 if it does not arrive within
    BODY_TIMEOUT_SECONDS, 413 past max_bytes (the route's body limit), 400 INVALID_JSON if it is not a strict
    JSON object."""
    require_json_content_type(request)
    return _as_object(await _read_body(request, max_bytes))


async def optional_json_object(request: web.Request) -> dict[str, Any]:
    """The body of a route whose body is optional (capture, void), as a JSON object; no body is {}.

    No body at all (no Content-Length or Content-Length: 0, and not chunked) is {}, whatever Content-Type
    says: there is no content to misread, and some clients label an empty POST (aiohttp's client sends
    application/octet-stream). A body that is sent follows json_object's rules (415 before it is read unless
    declared JSON; 408, 413; 400 INVALID_JSON unless a strict JSON object), except that an empty one is {}."""
    if not request.body_exists:
        return {}
    require_json_content_type(request)
    raw = await _read_body(request, MAX_BODY_BYTES)
    return _as_object(raw) if raw else {}


UNSTORABLE = "must not contain NUL (\\u0000) or unpaired surrogate (\\ud800-\\udfff) characters"


def storable(text: str) -> bool:
    """PostgreSQL text and jsonb hold neither NUL nor unpaired UTF-16 surrogates (JSON can spell both)."""
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


def metadata_problem(value: Any) -> str | None:
    """Why a metadata value (already a JSON object) is refused, or None: deeper than MAX_METADATA_DEPTH
    levels (the metadata object itself is level 1; each object or array inside adds one), more than
    MAX_METADATA_ITEMS members and array elements counted at every depth, or a string or key that PostgreSQL
    cannot store. Walked without recursion."""
    items = 0
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_METADATA_DEPTH:
            return f"must not nest objects and arrays more than {MAX_METADATA_DEPTH} levels deep"
        children = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in children:
            items += 1
            if items > MAX_METADATA_ITEMS:
                return f"must not hold more than {MAX_METADATA_ITEMS} members and array elements in all"
            if isinstance(key, str) and not storable(key):
                return UNSTORABLE
            if isinstance(child, dict | list):
                todo.append((child, depth + 1))
            elif isinstance(child, str) and not storable(child):
                return UNSTORABLE
    return None


# ---------------------------------------------------------------- the id rule
# An id (user_id, reference_id, asset_code, the operation fields, the Idempotency-Key header, path
# parameters) may not hide what it says: it contains no code point of FORBIDDEN_ID_RANGES, which are the
# Unicode 14 general categories Cc (control), Cf (format: zero-width, bidi embeddings/overrides/isolates,
# BOM, tags, soft hyphen...), Cs (surrogate), Co (private use), Zl and Zp (line and paragraph separators).
# Everything else is allowed, spaces included. The table is written out, not looked up in unicodedata, so
# that this module, the SQL function _wallet_printable (sql/0004.trust.sql), the OpenAPI document's id
# pattern and the model test all state the same rule whatever Unicode version their runtime knows;
# tests/api/test_hostile_input.py checks it against Unicode's categories and against the SQL function.
FORBIDDEN_ID_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xD800, 0xF8FF),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F), (0xF0000, 0xFFFFD),
    (0x100000, 0x10FFFD),
)  # fmt: skip
FORBIDDEN_ID_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})  # what the table was drawn from
_FIRSTS = [first for first, _ in FORBIDDEN_ID_RANGES]


def forbidden_id(ch: str) -> bool:
    """Whether the character ch is one an id may not contain."""
    i = bisect.bisect_right(_FIRSTS, ord(ch)) - 1
    return i >= 0 and ord(ch) <= FORBIDDEN_ID_RANGES[i][1]


def forbidden_id_ranges() -> tuple[tuple[int, int], ...]:
    """The code points the id rule refuses, as (first, last) ranges."""
    return FORBIDDEN_ID_RANGES


@functools.cache
def id_pattern() -> str:
    """The whole id rule (1 to MAX_ID_LENGTH characters, none in FORBIDDEN_ID_RANGES) as one regular
    expression, for the OpenAPI document's `pattern` of every id: `^[^<ranges>]{1,MAX_ID_LENGTH}$`.

    Code points of the BMP are written `\\uXXXX`, those beyond it as the characters themselves, which
    ECMA-262 (Unicode mode), Python's re and jsonschema-rs all read alike. The lengths are in the pattern
    because schemathesis merges minLength/maxLength into a pattern by rewriting it in Python's escapes,
    which jsonschema-rs then refuses."""

    def char(cp: int) -> str:
        return f"\\u{cp:04x}" if cp <= 0xFFFF else chr(cp)

    # without the surrogates: no Unicode string holds one (a validator reading UTF-8, like jsonschema-rs,
    # refuses a pattern that names them), and the service refuses one that JSON escapes smuggle in
    ranges = [(0xE000, b) if a == 0xD800 else (a, b) for a, b in FORBIDDEN_ID_RANGES]
    body = "".join(char(a) if a == b else f"{char(a)}-{char(b)}" for a, b in ranges)
    return f"^[^{body}]{{1,{MAX_ID_LENGTH}}}$"


def id_character_problem(value: str) -> str | None:
    """Why `value` may not be an id because of a character in it, or None. The message names the first
    such character by code point and its 1-based position. A printable string (str.isprintable: no category
    C* or Z* other than the ASCII space) never breaks the rule, which makes the common case one C-level scan."""
    if value.isprintable():
        return None
    for position, ch in enumerate(value, 1):
        if forbidden_id(ch):
            name = unicodedata.name(ch, "")
            return (
                f"must not contain U+{ord(ch):04X}{' ' + name if name else ''} at character {position}: "
                "control, format (zero-width, bidi, invisible), surrogate, private-use and line or paragraph "
                "separator characters are not allowed in ids"
            )
    return None


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
        elif (problem := id_character_problem(value)) is not None:
            self.add(field, problem)
        else:
            return value
        return None

    def integer(self, field: str, value: Any, low: int, high: int, required: bool = True, unit: str = "") -> int | None:
        """A JSON integer from low to high: not a boolean, float or string (None when optional and absent)."""
        if value is None:
            if required:
                self.add(field, "is required")
        elif isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.add(field, f"must be an integer{unit} from {low} to {high}")
        else:
            return value
        return None

    def amount(self, field: str, value: Any, required: bool = True) -> int | None:
        """A JSON integer from 1 to MAX_AMOUNT: not a boolean, float or string (None when optional and absent)."""
        return self.integer(field, value, 1, MAX_AMOUNT, required)

    def unknown(self, names: list[str] | set[str], allowed: set[str] | frozenset[str], what: str) -> None:
        for name in sorted(set(names) - allowed):
            self.add(name, f"is not a known {what}")


def _idempotency_key(problems: FieldErrors, body: dict[str, Any], headers: MultiMapping[str]) -> str | None:
    """A write's key: reference_id in the body or the Idempotency-Key header; one of the two is required, and
    when both are given they must be equal."""
    keys = headers.getall(IDEMPOTENCY_HEADER, [])
    header = keys[0] if len(keys) == 1 else None
    if len(keys) > 1:  # which one a proxy reads is anyone's guess: refuse rather than pick one
        problems.add(IDEMPOTENCY_HEADER, "must be given once")
    key = problems.ident(IDEMPOTENCY_HEADER, header, required=False)
    reference_id = problems.ident("reference_id", body.get("reference_id"), required=not keys)
    if key is not None and reference_id is not None and key != reference_id:
        problems.add("reference_id", f"differs from the {IDEMPOTENCY_HEADER} header")
    return reference_id if reference_id is not None else key


def _metadata(problems: FieldErrors, body: dict[str, Any]) -> Any:
    """The optional metadata: a JSON object within the depth and size limits, with storable text."""
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.add("metadata", "must be a JSON object")
    elif metadata is not None and (problem := metadata_problem(metadata)) is not None:
        problems.add("metadata", problem)
    return metadata


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
    args["reference_id"] = _idempotency_key(problems, body, headers)
    args["metadata"] = _metadata(problems, body)
    problems.raise_any()
    return args


# The fields of each economy request body (anything else is a 400): the OpenAPI document's request schemas
# list the same (tests/api/test_openapi.py).
PURCHASE_FIELDS = frozenset({"user_id", "reference_id", "item_id", "price", "metadata"})
PRICE_LEG_FIELDS = frozenset({"asset_code", "amount"})
REVERSAL_FIELDS = frozenset({"reference_id", "original_reference_id", "reason", "amount", "metadata"})
HOLD_FIELDS = frozenset({"user_id", "asset_code", "amount", "reference_id", "expires_in", "item_id", "metadata"})
CAPTURE_FIELDS = frozenset({"amount"})


def _price(problems: FieldErrors, value: Any) -> list[dict[str, Any]] | None:
    """A purchase's price: an array of 1 to MAX_PRICE_LEGS {asset_code, amount} objects, each asset at most
    once (in any order: wallet_purchase sorts them). Problems name the leg: price[1].amount."""
    if value is None:
        problems.add("price", "is required")
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_PRICE_LEGS:
        problems.add("price", f"must be an array of 1 to {MAX_PRICE_LEGS} {{asset_code, amount}} objects")
        return None
    legs: list[dict[str, Any]] = []
    codes: list[str] = []
    for i, leg in enumerate(value):
        where = f"price[{i}]"
        if not isinstance(leg, dict):
            problems.add(where, "must be an object {asset_code, amount}")
            continue
        for name in sorted(set(leg) - PRICE_LEG_FIELDS):
            problems.add(f"{where}.{name}", "is not a known field")
        asset_code = problems.ident(f"{where}.asset_code", leg.get("asset_code"))
        amount = problems.amount(f"{where}.amount", leg.get("amount"))
        if asset_code is not None:
            codes.append(asset_code)
        if asset_code is not None and amount is not None:
            legs.append({"asset_code": asset_code, "amount": amount})
    repeated = sorted({code for code in codes if codes.count(code) > 1})
    if repeated:
        problems.add("price", f"lists {', '.join(repeated)} more than once: each asset may appear once")
    return legs


def purchase(body: dict[str, Any], headers: MultiMapping[str]) -> dict[str, Any]:
    """The arguments of wallet_purchase: {user_id, reference_id, item_id, price, metadata?}."""
    problems = FieldErrors()
    problems.unknown(list(body), PURCHASE_FIELDS, "field")
    args: dict[str, Any] = {
        "user_id": problems.ident("user_id", body.get("user_id")),
        "item_id": problems.ident("item_id", body.get("item_id")),
        "price": _price(problems, body.get("price")),
    }
    args["reference_id"] = _idempotency_key(problems, body, headers)
    args["metadata"] = _metadata(problems, body)
    problems.raise_any()
    return args


def reversal(body: dict[str, Any], headers: MultiMapping[str]) -> dict[str, Any]:
    """The arguments of wallet_reverse: {reference_id, original_reference_id, reason, amount?, metadata?}."""
    problems = FieldErrors()
    problems.unknown(list(body), REVERSAL_FIELDS, "field")
    args: dict[str, Any] = {
        "original_reference_id": problems.ident("original_reference_id", body.get("original_reference_id")),
        "reason": problems.ident("reason", body.get("reason")),
        "amount": problems.amount("amount", body.get("amount"), required=False),
    }
    args["reference_id"] = _idempotency_key(problems, body, headers)
    args["metadata"] = _metadata(problems, body)
    problems.raise_any()
    return args


def hold(body: dict[str, Any], headers: MultiMapping[str]) -> dict[str, Any]:
    """The arguments of wallet_hold: {user_id, asset_code, amount, reference_id, expires_in?, item_id?,
    metadata?}; expires_in is whole seconds from 1 to MAX_HOLD_SECONDS (absent: the SQL default)."""
    problems = FieldErrors()
    problems.unknown(list(body), HOLD_FIELDS, "field")
    args: dict[str, Any] = {
        "user_id": problems.ident("user_id", body.get("user_id")),
        "asset_code": problems.ident("asset_code", body.get("asset_code")),
        "amount": problems.amount("amount", body.get("amount")),
        "expires_in": problems.integer(
            "expires_in", body.get("expires_in"), 1, MAX_HOLD_SECONDS, required=False, unit=" number of seconds"
        ),
        "item_id": problems.ident("item_id", body.get("item_id"), required=False),
    }
    args["reference_id"] = _idempotency_key(problems, body, headers)
    args["metadata"] = _metadata(problems, body)
    problems.raise_any()
    return args


def capture(reference_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The arguments of wallet_capture: the hold's reference id (path) and {amount?} (absent: all of it)."""
    problems = FieldErrors()
    problems.unknown(list(body), CAPTURE_FIELDS, "field")
    args = {
        "reference_id": problems.ident("reference_id", reference_id),
        "amount": problems.amount("amount", body.get("amount"), required=False),
    }
    problems.raise_any()
    return args


def void(reference_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The arguments of wallet_void: the hold's reference id (path); the body, if any, is {}."""
    problems = FieldErrors()
    problems.unknown(list(body), set(), "field")
    args = {"reference_id": problems.ident("reference_id", reference_id)}
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


# RFC 3339's date-time (ISO 8601 with a mandatory offset): 2026-02-08T09:24:50Z, 2026-02-08T10:24:50.5+01:00
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?"
)
DATE_TIME_FORMAT = "an RFC 3339 date-time with a time zone offset (Z or +hh:mm or -hh:mm), e.g. 2026-02-08T09:24:50Z"


def instant(problems: FieldErrors, name: str, raw: str | None) -> datetime | None:
    """An instant given as RFC 3339 date-time, as an aware datetime (fractions beyond microseconds are cut off:
    PostgreSQL keeps microseconds). An offset is required: a time without one names no instant."""
    if raw is None:
        return None
    match = _DATE_TIME.fullmatch(raw)
    if match is None:
        hint = " (a + in a query string must be sent as %2B)" if " " in raw else ""
        problems.add(name, f"must be {DATE_TIME_FORMAT}{hint}")
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu is None and sign is None:
        problems.add(name, f"has no time zone offset: it must be {DATE_TIME_FORMAT}")
        return None
    try:
        offset = timedelta(0) if zulu else int(sign + "1") * timedelta(hours=int(off_h), minutes=int(off_m))
        if int(off_m or 0) > 59:
            raise ValueError("offset minutes")
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(offset),
        )
    except ValueError:  # month 13, February 30, hour 24, second 60 (a leap second), offset 24:00 or more...
        problems.add(name, f"is not a valid date and time: it must be {DATE_TIME_FORMAT}")
        return None


def balance_query(user: str, query: MultiMapping[str]) -> dict[str, Any]:
    problems = FieldErrors()
    problems.unknown(list(query), {"asset_code", "at"}, "query parameter")
    args = {
        "user_id": user_id(problems, user),
        "asset_code": problems.ident("asset_code", _single(query, "asset_code", problems), required=False),
        "at": instant(problems, "at", _single(query, "at", problems)),
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
