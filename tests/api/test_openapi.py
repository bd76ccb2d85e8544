"""The OpenAPI document is valid, covers every route of the app and every error code, states every limit of
service/limits.py, declares its headers everywhere they are sent, and is served."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from service import app as app_module
from service import auth
from service.api_errors import API_ERRORS
from service.docs import OPENAPI_PATH, spec
from service.limits import (
    DEFAULT_HOLD_SECONDS,
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
    MAX_AMOUNT,
    MAX_BATCH_BODY_BYTES,
    MAX_BATCH_OPERATIONS,
    MAX_BODY_BYTES,
    MAX_CURSOR_LENGTH,
    MAX_HOLD_SECONDS,
    MAX_ID_LENGTH,
    MAX_OFFSET,
    MAX_PRICE_LEGS,
)
from service.validation import id_pattern

BASE = app_module.API
METHODS = ("get", "post", "put", "patch", "delete")
# The docs page and its assets are routes of the app but not operations of the API (tests/api/test_docs_page.py)
DOCS_PAGE_ROUTES = {("get", "/docs"), ("get", "/docs/{name}")}
# GET /metrics (Prometheus text format, for the operators' scraper) is outside the API's base path: not an
# operation of the document (README, "Operating")
OUTSIDE_THE_API = {"/metrics"}


def app_routes() -> set[tuple[str, str]]:
    app = app_module.create_app("postgresql://unused")
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path in OUTSIDE_THE_API:
            continue
        assert path is not None and path.startswith(BASE + "/"), (route, info)
        out.add((route.method.lower(), path[len(BASE) :]))
    return out


def doc_routes() -> set[tuple[str, str]]:
    return {(method, path) for path, item in spec()["paths"].items() for method in item if method in METHODS}


def operations() -> Iterator[tuple[str, str, dict]]:
    for path, item in spec()["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


def resolve(node: Any) -> Any:
    """The object a local $ref points to (node itself if it is no $ref)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def response_schemas(response: dict) -> list[str]:
    """The component names of a response's JSON body schema (each alternative of a oneOf)."""
    schema = response["content"]["application/json"]["schema"]
    refs = schema.get("oneOf", [schema])
    return [r["$ref"].removeprefix("#/components/schemas/") for r in refs if "$ref" in r]


def test_document_is_valid_openapi_3():
    assert spec()["openapi"].startswith("3.")
    validate(spec())


def test_every_route_is_documented_and_nothing_else():
    routes = app_routes()
    assert routes >= DOCS_PAGE_ROUTES  # the exclusion names real routes
    assert routes - DOCS_PAGE_ROUTES == doc_routes()
    assert spec()["servers"][0]["url"] == BASE


def test_no_schema_refers_to_itself():
    """A recursive schema (the old MetadataValue) makes generators drop the operations that use it."""
    schemas = spec()["components"]["schemas"]

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"].removeprefix("#/components/schemas/")
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    def reachable(name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(refs(schemas[name]))
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(refs(schemas[current]))
        return seen

    assert [name for name in schemas if name in reachable(name)] == []


def test_every_error_code_has_its_status_and_its_own_schema():
    documented = {e["code"]: e["status"] for e in spec()["x-error-codes"]}
    assert documented == API_ERRORS
    for entry in spec()["x-error-codes"]:
        envelope = resolve({"$ref": entry["schema"]})
        assert envelope["required"] == ["error"]
        body = resolve(envelope["properties"]["error"])
        assert body["properties"]["code"]["enum"] == [entry["code"]]
        assert set(body["required"]) == {"code", "message", "details"}
        assert "$ref" in body["properties"]["details"], entry["code"]  # typed, not a bare object


def test_error_details_are_typed_as_the_service_fills_them():
    """The details each error carries (service/api_errors.py, from the functions' DETAIL), as the document types
    them: code -> (keys always present, keys present in some cases)."""
    expected = {
        "VALIDATION_ERROR": ({"errors"}, set()),
        "WALLET_NOT_FOUND": ({"user_id"}, set()),
        "ASSET_NOT_FOUND": ({"asset_code"}, set()),
        "TRANSACTION_NOT_FOUND": ({"reference_id"}, set()),
        # the key is a transaction's or a hold's
        "IDEMPOTENCY_CONFLICT": ({"reference_id"}, {"transaction_id", "hold_reference_id"}),
        "INSUFFICIENT_FUNDS": ({"asset_code", "required", "available", "held"}, set()),
        "BALANCE_LIMIT_EXCEEDED": ({"amount", "balance", "limit"}, set()),
        "FORBIDDEN": ({"required_scope"}, set()),
        "REVERSAL_EXCEEDS_ORIGINAL": (
            {"original_reference_id", "asset_code", "original_amount", "reversed", "requested"},
            set(),
        ),
        "NOT_REVERSIBLE": ({"original_reference_id", "reason"}, set()),
        "HOLD_NOT_FOUND": ({"reference_id"}, set()),
        "HOLD_NOT_ACTIVE": ({"reference_id", "status", "captured_amount"}, set()),
        "HOLD_EXPIRED": ({"reference_id", "expires_at"}, set()),
        "CAPTURE_EXCEEDS_HOLD": ({"reference_id", "amount", "held"}, set()),
    }
    for entry in spec()["x-error-codes"]:
        body = resolve(resolve({"$ref": entry["schema"]})["properties"]["error"])
        details = resolve(body["properties"]["details"])
        required, optional = expected.get(entry["code"], (set(), set()))
        assert set(details.get("properties", {})) == required | optional, entry["code"]
        assert set(details.get("required", [])) == required, entry["code"]
        assert details["additionalProperties"] is False
    field_error = resolve(spec()["components"]["schemas"]["ValidationErrorDetails"]["properties"]["errors"]["items"])
    assert set(field_error["required"]) == {"field", "message"}


def documented_details(entry: dict) -> set[str]:
    """The keys the document allows in an error's details."""
    body = resolve(resolve({"$ref": entry["schema"]})["properties"]["error"])
    return set(resolve(body["properties"]["details"]).get("properties", {}))


def test_the_registry_keeps_exactly_the_documented_details():
    """service/api_errors.py keeps the DETAIL keys it names and drops the rest (a function's DETAIL may say
    more, e.g. user_id): what it keeps is what the document allows, for every SQLSTATE that has details."""
    from types import SimpleNamespace

    from service.api_errors import DB_ERRORS

    documented = {entry["code"]: documented_details(entry) for entry in spec()["x-error-codes"]}
    every_key = set().union(*documented.values()) | {"user_id_of_no_error", "extra"}
    error = SimpleNamespace(
        diag=SimpleNamespace(
            message_detail=json.dumps(dict.fromkeys(every_key, 1)), message_primary="m", column_name="f"
        )
    )
    checked = 0
    for state, db_error in DB_ERRORS.items():
        if db_error.details is None or db_error.code == "VALIDATION_ERROR":
            continue
        assert set(db_error.details(error)) == documented[db_error.code], state  # type: ignore[arg-type]
        checked += 1
    assert checked >= 12


def test_every_error_response_names_schemas_of_its_status():
    by_schema = {e["schema"].removeprefix("#/components/schemas/"): e for e in spec()["x-error-codes"]}
    for method, path, op in operations():
        for status, response in op["responses"].items():
            if int(status) < 400 or path == "/health":
                continue
            names = response_schemas(response)
            assert names, (method, path, status)
            for name in names:
                assert by_schema[name]["status"] == int(status), (method, path, status, name)
                assert by_schema[name]["code"] in response["description"], (method, path, status, name)


def test_every_error_code_is_answered_by_some_operation():
    by_schema = {e["schema"].removeprefix("#/components/schemas/"): e["code"] for e in spec()["x-error-codes"]}
    named = {
        by_schema[name]
        for _, path, op in operations()
        for status, response in op["responses"].items()
        if int(status) >= 400 and path != "/health"
        for name in response_schemas(response)
    }
    # 405 METHOD_NOT_ALLOWED answers a method no operation has, so no operation lists it
    assert named == set(API_ERRORS) - {"METHOD_NOT_ALLOWED"}


def test_every_operation_response_names_its_error_codes():
    text = json.dumps(spec())
    for code in API_ERRORS:
        assert code in text


def test_headers_are_declared_on_every_response_that_carries_them():
    """X-Request-Id on every response, Idempotent-Replayed on a replay, Retry-After on every 503 the error
    middleware answers, WWW-Authenticate on every 401: all by $ref to components/headers, none spelled out
    inline."""
    components = spec()["components"]["headers"]
    assert components["X-Request-Id"]["required"] is True
    assert components["Idempotent-Replayed"]["required"] is True
    assert components["Idempotent-Replayed-If-Replay"]["required"] is False
    assert components["Idempotent-Replayed-If-Replay"]["schema"] == components["Idempotent-Replayed"]["schema"]
    assert components["Retry-After"]["required"] is True
    assert components["WWW-Authenticate"]["required"] is True
    assert components["WWW-Authenticate"]["schema"]["enum"] == ["Bearer"]
    for method, path, op in operations():
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            where = (method, path, status)
            assert all(set(h) == {"$ref"} for h in headers.values()), where
            assert headers.get("X-Request-Id") == {"$ref": "#/components/headers/X-Request-Id"}, where
            # a batch's 200 is no replay: each of its results says whether that operation was one (status 200)
            replay = method == "post" and status == "200" and path != "/wallets/batch"
            assert ("Idempotent-Replayed" in headers) == replay, where
            if replay:
                # a void answers 200 whether it voided the hold now or had done so before (then a replay)
                optional = path == "/holds/{reference_id}/void"
                name = "Idempotent-Replayed-If-Replay" if optional else "Idempotent-Replayed"
                assert headers["Idempotent-Replayed"] == {"$ref": f"#/components/headers/{name}"}, where
            # GET /health answers its own 503 (status unhealthy), without Retry-After
            assert ("Retry-After" in headers) == (status == "503" and path != "/health"), where
            assert ("WWW-Authenticate" in headers) == (status == "401"), where


def test_every_route_is_named_after_its_operation():
    """service/auth.py finds a route's scope by the route's name: the operationId."""
    names = {route.name for route in app_module.create_app("postgresql://unused").router.routes() if route.name} - {
        "docs",
        "docsAsset",
        "metrics",
    }
    assert names == {op["operationId"] for _, _, op in operations()}


def test_security_is_declared_as_the_service_enforces_it():
    """bearerAuth on every operation that needs a key, with the scope service/auth.py requires
    (x-required-scope, and named in its 403); GET /health and GET /openapi.json open; 401 and 403 exactly
    where a key is needed."""
    scheme = spec()["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "security" not in spec()  # declared per operation, so that none is secured by accident
    scopes = set(resolve({"$ref": "#/components/schemas/ForbiddenDetails"})["properties"]["required_scope"]["enum"])
    for method, path, op in operations():
        needed = auth.required_scope(op["operationId"])
        where = (method, path)
        if needed is None:
            assert op["security"] == [] and "x-required-scope" not in op, where
            assert not {"401", "403"} & set(op["responses"]), where
        else:
            assert op["security"] == [{"bearerAuth": []}], where
            assert op["x-required-scope"] == needed and needed in scopes, where
            assert {"401", "403"} <= set(op["responses"]), where
            assert f"lacks the {needed} scope" in op["responses"]["403"]["description"], where
    open_paths = {path for method, path, op in operations() if auth.required_scope(op["operationId"]) is None}
    assert open_paths == {"/health", "/openapi.json"}


def test_the_transaction_shows_its_actor():
    transaction = spec()["components"]["schemas"]["Transaction"]
    assert "actor" in transaction["required"] and transaction["properties"]["actor"]["type"] == "string"


def test_posting_schemas_match_the_validator():
    from service.validation import IDEMPOTENCY_HEADER, OPERATION_FIELDS, operation_field_required

    required_field = {"topup": False, "bonus": True, "spend": True}
    assert set(OPERATION_FIELDS) == set(required_field)
    for op, field in OPERATION_FIELDS.items():
        assert operation_field_required(op) == required_field[op]
        operation = spec()["paths"][f"/wallets/{op}"]["post"]
        schema = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
        assert set(schema["properties"]) == {"user_id", "asset_code", "amount", "reference_id", "metadata", field}
        assert (field in schema["required"]) == required_field[op]
        assert schema["additionalProperties"] is False
        # the key may come in the header instead: optional in the body, the header on every posting
        assert "reference_id" not in schema["required"]
        headers = [resolve(p) for p in operation["parameters"] if resolve(p)["in"] == "header"]
        assert [p for p in headers if p["name"] == IDEMPOTENCY_HEADER and not p["required"]], op
        for text in (operation["description"], schema["description"]):
            assert "one of the two is required" in text and "must be equal" in text, op
        metadata = resolve(schema["properties"]["metadata"])
        assert metadata["type"] == "object" and metadata["additionalProperties"] is True
        assert "NUL" in metadata["description"]


def request_schema(path: str) -> dict:
    return resolve(spec()["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])


def test_economy_request_schemas_match_the_validator():
    """The fields each body may have are those service/validation.py accepts; the required ones are those it
    requires (a key: the body's reference_id or the header); capture's body is optional, void takes none."""
    from service import validation

    cases = {
        "/wallets/purchase": (validation.PURCHASE_FIELDS, {"user_id", "item_id", "price"}),
        "/wallets/reverse": (validation.REVERSAL_FIELDS, {"original_reference_id", "reason"}),
        "/wallets/hold": (validation.HOLD_FIELDS, {"user_id", "asset_code", "amount"}),
        "/holds/{reference_id}/capture": (validation.CAPTURE_FIELDS, set()),
    }
    for path, (fields, required) in cases.items():
        schema = request_schema(path)
        assert set(schema["properties"]) == fields, path
        assert set(schema.get("required", [])) == required, path
        assert schema["additionalProperties"] is False, path
    leg = resolve(request_schema("/wallets/purchase")["properties"]["price"]["items"])
    assert set(leg["properties"]) == set(leg["required"]) == validation.PRICE_LEG_FIELDS
    assert leg["additionalProperties"] is False
    for path in ("/wallets/purchase", "/wallets/reverse", "/wallets/hold"):
        operation = spec()["paths"][path]["post"]
        assert operation["requestBody"]["required"] is True
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in operation["parameters"], path
        for text in (operation["description"], request_schema(path)["description"]):
            assert "one of the two is required" in text and "must be equal" in text, path
    assert spec()["paths"]["/holds/{reference_id}/capture"]["post"]["requestBody"]["required"] is False
    assert "requestBody" not in spec()["paths"]["/holds/{reference_id}/void"]["post"]
    balance = spec()["paths"]["/wallets/{user_id}/balance"]["get"]
    at = next(p for p in map(resolve, balance["parameters"]) if p["name"] == "at")
    assert at["schema"]["format"] == "date-time" and not at["required"]


# ---------------------------------------------------------------- limits (service/limits.py)

AMOUNT_FIELDS = {"amount", "required", "original_amount", "requested", "captured_amount"}  # 1 .. MAX_AMOUNT
BALANCE_FIELDS = {"balance", "balance_after", "available", "held", "reversed"}  # 0 .. MAX_AMOUNT
ID_FIELDS = {
    "user_id",
    "asset_code",
    "reference_id",
    "original_reference_id",
    "reason",
    "payment_method",
    "bonus_type",
    "item_id",
    "Idempotency-Key",
    "IdempotencyKey",
}


def numbers(node: Any, owner: str | None = None, field: str | None = None, path: tuple = ()) -> Iterator[tuple]:
    """(owner schema, field, keyword, value, path) of every number in the document outside examples and the
    x-error-codes table; field is the property or parameter the number constrains."""
    if isinstance(node, dict):
        if "in" in node and "name" in node:
            field = node["name"]
        for key, value in node.items():
            if key in ("example", "examples", "x-error-codes"):
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                yield owner, field, key, value, (*path, key)
            elif path[-1:] == ("properties",):
                yield from numbers(value, owner, key, (*path, key))
            elif path == ("components", "schemas") or path == ("components", "parameters"):
                yield from numbers(value, key, key, (*path, key))
            else:
                yield from numbers(value, owner, field, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from numbers(value, owner, field, (*path, i))


def expected_number(owner: str | None, field: str | None, keyword: str) -> int | None:
    if keyword == "maxLength":
        if field == "cursor":
            return MAX_CURSOR_LENGTH
        return MAX_ID_LENGTH if field in ID_FIELDS else None
    if keyword == "minLength":
        return 1 if field in ID_FIELDS else None
    table: dict[str, int] = {}
    if owner == "BalanceLimitExceededDetails" and field == "limit":
        table = {"minimum": MAX_AMOUNT, "maximum": MAX_AMOUNT}
    elif owner == "CaptureExceedsHoldDetails" and field == "held":  # the hold's amount
        table = {"minimum": 1, "maximum": MAX_AMOUNT}
    elif owner == "BatchRequest" and field == "operations":
        table = {"minItems": 1, "maxItems": MAX_BATCH_OPERATIONS}
    elif field in ("price", "legs"):  # a purchase's assets (and a transaction's)
        table = {"minItems": 1, "maxItems": MAX_PRICE_LEGS}
    elif field == "expires_in":
        table = {"minimum": 1, "maximum": MAX_HOLD_SECONDS, "default": DEFAULT_HOLD_SECONDS}
    elif field in AMOUNT_FIELDS:
        table = {"minimum": 1, "maximum": MAX_AMOUNT}
    elif field in BALANCE_FIELDS:
        table = {"minimum": 0, "maximum": MAX_AMOUNT}
    elif field == "limit":  # the history page size, asked for (query) and answered (Pagination)
        table = {"minimum": 1, "maximum": HISTORY_MAX_LIMIT, "default": HISTORY_DEFAULT_LIMIT}
    elif field == "offset":
        table = {"minimum": 0, "maximum": MAX_OFFSET, "default": 0}
    elif owner == "NoDetails":
        table = {"maxProperties": 0}
    return table.get(keyword)


def test_every_number_in_the_document_is_a_limit_of_the_service():
    """Each number the document states is the limit service/limits.py holds for that place; a number in a
    place this test does not know fails too (add it here, with the limit it states)."""
    found = list(numbers(spec()))
    assert found
    wrong = [
        (path, value, expected_number(owner, field, keyword))
        for owner, field, keyword, value, path in found
        if value != expected_number(owner, field, keyword)
    ]
    assert wrong == []


def test_every_limit_is_stated_where_it_applies():
    """The other direction: every amount and balance has its maximum, every id-like input its maxLength,
    history's limit and offset their bounds and defaults."""
    found = {(owner, field, keyword, path[:-1]) for owner, field, keyword, _value, path in numbers(spec())}

    def integers(node: Any, path: tuple = ()) -> Iterator[tuple[str, tuple]]:
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                if value.get("type") == "integer":
                    yield key, (*path, "properties", key)
            for key, value in node.items():
                if key not in ("example", "examples"):
                    yield from integers(value, (*path, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from integers(value, (*path, i))

    bounded = {path for _o, _f, keyword, path in found if keyword == "maximum"}
    amounts = [(f, p) for f, p in integers(spec()) if f in AMOUNT_FIELDS | BALANCE_FIELDS]
    assert len(amounts) >= 10
    assert [p for _f, p in amounts if p not in bounded] == []

    inputs: list[tuple[str, dict]] = []
    for _method, _path, op in operations():
        for param in map(resolve, op.get("parameters", [])):
            if param["name"] in ID_FIELDS:
                inputs.append((param["name"], param["schema"]))
        body = op.get("requestBody")
        if body:
            schema = resolve(body["content"]["application/json"]["schema"])
            inputs += [(f, s) for f, s in schema["properties"].items() if s.get("type") == "string"]
    assert {f for f, _ in inputs} == ID_FIELDS - {"IdempotencyKey"}
    # the lengths live in the id pattern (validation.id_pattern: ^[^...]{1,MAX_ID_LENGTH}$): schemathesis rewrites a
    # pattern that has minLength/maxLength beside it into escapes its validator refuses
    assert [f for f, s in inputs if s.get("pattern") != id_pattern()] == []
    assert id_pattern().endswith(f"]{{1,{MAX_ID_LENGTH}}}$")

    history = spec()["paths"]["/wallets/{user_id}/transactions"]["get"]
    params = {p["name"]: p for p in map(resolve, history["parameters"])}
    assert params["limit"]["schema"]["maximum"] == HISTORY_MAX_LIMIT
    assert params["limit"]["schema"]["default"] == HISTORY_DEFAULT_LIMIT
    assert f"1 to {HISTORY_MAX_LIMIT} (default {HISTORY_DEFAULT_LIMIT})" in params["limit"]["description"]
    assert params["offset"]["schema"]["maximum"] == MAX_OFFSET
    assert params["offset"]["schema"]["default"] == 0

    hold = resolve(spec()["paths"]["/wallets/hold"]["post"]["requestBody"]["content"]["application/json"]["schema"])
    assert hold["properties"]["expires_in"]["maximum"] == MAX_HOLD_SECONDS
    assert hold["properties"]["expires_in"]["default"] == DEFAULT_HOLD_SECONDS
    assert (
        f"1 to {MAX_HOLD_SECONDS} (default {DEFAULT_HOLD_SECONDS})" in hold["properties"]["expires_in"]["description"]
    )
    purchase = spec()["paths"]["/wallets/purchase"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    price = resolve(purchase)["properties"]["price"]
    assert (price["minItems"], price["maxItems"]) == (1, MAX_PRICE_LEGS)
    assert f"1 to {MAX_PRICE_LEGS} assets" in price["description"]
    assert resolve(price["items"])["properties"]["asset_code"]["pattern"] == id_pattern()


def test_limits_stated_in_words_match_the_service():
    """413's body limit, and the 2^n-1 bounds, where the descriptions spell them out."""
    text = json.dumps(spec())
    kib = MAX_BODY_BYTES // 1024
    assert kib * 1024 == MAX_BODY_BYTES
    assert set(re.findall(r"(\d+) KiB", text)) == {str(kib)}
    too_large = [r for _, _, op in operations() for s, r in op["responses"].items() if s == "413"]
    assert too_large and all(f"{kib} KiB" in r["description"] for r in too_large)
    mib = MAX_BATCH_BODY_BYTES // (1024 * 1024)
    assert mib * 1024 * 1024 == MAX_BATCH_BODY_BYTES
    assert set(re.findall(r"(\d+) MiB", text)) == {str(mib)}
    batch = spec()["paths"]["/wallets/batch"]["post"]
    assert f"body over {mib} MiB" in batch["responses"]["413"]["description"]
    operations_field = request_schema("/wallets/batch")["properties"]["operations"]
    assert f"1 to {MAX_BATCH_OPERATIONS} operations" in operations_field["description"]
    powers = {int(n) for n in re.findall(r"2\^(\d+)-1", text)}
    assert {2**n - 1 for n in powers} == {MAX_AMOUNT, MAX_OFFSET}
    assert re.findall(r"(\d+) to (\d+) characters", text)
    assert set(re.findall(r"\d+ to (\d+) characters", text)) == {str(MAX_ID_LENGTH)}


# ---------------------------------------------------------------- served


@pytest.fixture
async def client(aiohttp_client, app_url):
    return await aiohttp_client(app_module.create_app(app_url, pool_min_size=1, pool_max_size=2))


async def test_the_document_is_served_exactly(client):
    r = await client.get(f"{BASE}/openapi.json")
    assert r.status == 200 and r.content_type == "application/json"
    assert "X-Request-Id" in r.headers
    assert await r.json() == spec()
    assert await r.json() == json.loads(OPENAPI_PATH.read_text())
