"""POST /wallets/batch: up to MAX_BATCH_OPERATIONS top-ups, bonuses and spends in one request and ONE call of
wallet_post_batch, each answered exactly as its single route would have answered it.

- The whole request: 401 without a valid key; 403 for a key with none of the topup, bonus and spend scopes
  (service/auth.py, ANY_SCOPE); 415 unless declared JSON; 413 past MAX_BATCH_BODY_BYTES (this route's own
  limit; every other route keeps MAX_BODY_BYTES); 400 INVALID_JSON if the body is not a strict JSON object;
  400 VALIDATION_ERROR if it has another field than `operations`, if `operations` is not an array of 1 to
  MAX_BATCH_OPERATIONS elements, or if an Idempotency-Key header is sent (each operation carries its own
  reference_id). Nothing is written then. Otherwise 200 {results: [{status, body}]}, one per operation, in
  request order.
- Each operation, in request order: no `operation` or an unknown one is a 400 VALIDATION_ERROR on the field
  `operation`; a key without that operation's scope is the single route's 403; a shape the single route
  refuses is its 400 (validation.posting, the same checks with the same messages). Those are not sent to the
  database. The others go, in request order, in one call of wallet_post_batch (one transaction; the database
  applies them one after another as the single functions would, a refusal affecting no other operation):
  each posted one is 201 with the single route's body (200 for a replay, which the single route marks with
  Idempotent-Replayed: true, here by its status alone), each refused one the status and body that
  api_errors.from_db_fields gives its SQLSTATE, exactly as the single route's error middleware would.
- A failure of the whole call (the database unreachable, a wallet locked past the retries of
  service/database.py) is the whole request's error, as for a single posting: nothing was written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from psycopg.types.json import Jsonb

from service import metrics, validation
from service.api_errors import ApiError, from_db_fields, validation_error
from service.appkeys import ACTOR
from service.auth import API_KEY, forbidden, required_scope
from service.database import BATCH_SQL, fetch
from service.handlers import posting_body
from service.limits import MAX_BATCH_BODY_BYTES, MAX_BATCH_OPERATIONS

FIELDS = frozenset({"operations"})  # of the request body
OPERATION = "operation"  # each operation's field naming what it is: one of validation.OPERATION_FIELDS

# an operation's validation sees no request header: the batch's own headers are no operation's (an
# Idempotency-Key header on the batch is refused as a whole)
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


def _result(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"status": status, "body": body}


def _error(error: ApiError) -> dict[str, Any]:
    return _result(error.status, error.body())


def operations_of(body: dict[str, Any], headers: CIMultiDictProxy[str]) -> list[Any]:
    """The batch's operations as given (each still to be checked); 400 VALIDATION_ERROR for the whole request."""
    problems = validation.FieldErrors()
    problems.unknown(list(body), FIELDS, "field")
    if validation.IDEMPOTENCY_HEADER in headers:
        problems.add(validation.IDEMPOTENCY_HEADER, "is not taken by a batch: each operation has its own reference_id")
    operations = body.get("operations")
    if operations is None:
        problems.add("operations", "is required")
    elif not isinstance(operations, list) or not 1 <= len(operations) <= MAX_BATCH_OPERATIONS:
        problems.add("operations", f"must be an array of 1 to {MAX_BATCH_OPERATIONS} operations")
    problems.raise_any()
    assert isinstance(operations, list)
    return operations


def check(item: Any, key_allows: Callable[[str], bool]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One operation as the single route would check it before calling the database: (None, its refusal's
    result) or (the element to send to wallet_post_batch, None)."""
    operation = item.get(OPERATION) if isinstance(item, dict) else None
    if not isinstance(operation, str) or operation not in validation.OPERATION_FIELDS:
        if not isinstance(item, dict):
            message = "each operation must be a JSON object with an operation: topup, bonus or spend"
        elif operation is None:
            message = "is required"
        else:
            message = "must be one of " + ", ".join(validation.OPERATION_FIELDS)
        return None, _error(validation_error([{"field": OPERATION, "message": message}]))
    scope = required_scope(operation)  # the single route is named after its operation
    assert scope is not None
    if not key_allows(scope):
        return None, _error(forbidden(scope))
    fields = {name: value for name, value in item.items() if name != OPERATION}
    try:
        args = validation.posting(operation, fields, _NO_HEADERS)
    except ApiError as error:
        return None, _error(error)
    element = {OPERATION: operation, **{name: value for name, value in args.items() if value is not None}}
    return element, None


async def post_batch(request: web.Request) -> web.Response:
    body = await validation.json_object(request, max_bytes=MAX_BATCH_BODY_BYTES)
    items = operations_of(body, request.headers)
    key = request[API_KEY]
    results: list[dict[str, Any] | None] = []
    elements: list[dict[str, Any]] = []
    sent: list[int] = []  # the request index of each element sent, in order
    for index, item in enumerate(items):
        element, refused = check(item, key.allows)
        results.append(refused)
        if element is not None:
            elements.append(element)
            sent.append(index)
    if elements:
        rows = await fetch(request, BATCH_SQL, {"operations": Jsonb(elements), "actor": request[ACTOR]})
        if len(rows) != len(elements):
            raise RuntimeError(f"wallet_post_batch answered {len(rows)} rows for {len(elements)} operations")
        for row in rows:
            index = sent[row["ordinal"] - 1]
            if row["sqlstate"] is not None:
                results[index] = _error(from_db_fields(row["sqlstate"], row["message"], row["detail"], row["field"]))
                continue
            if not row["replayed"]:
                metrics.posted(request.app, row["transaction_type"], row["asset_code"])
            results[index] = _result(200 if row["replayed"] else 201, posting_body(row))
    assert all(result is not None for result in results)
    return web.json_response({"results": results})
