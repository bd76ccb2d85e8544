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
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
    MAX_AMOUNT,
    MAX_BODY_BYTES,
    MAX_CURSOR_LENGTH,
    MAX_ID_LENGTH,
    MAX_OFFSET,
)
from service.validation import id_pattern

BASE = app_module.API
METHODS = ("get", "post", "put", "patch", "delete")
# The docs page and its assets are routes of the app but not operations of the API (tests/api/test_docs_page.py)
DOCS_PAGE_ROUTES = {("get", "/docs"), ("get", "/docs/{name}")}


def app_routes() -> set[tuple[str, str]]:
    app = app_module.create_app("postgresql://unused")
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
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
    """The details each error carries (service/api_errors.py), as the document types them."""
    expected = {
        "VALIDATION_ERROR": {"errors"},
        "WALLET_NOT_FOUND": {"user_id"},
        "ASSET_NOT_FOUND": {"asset_code"},
        "TRANSACTION_NOT_FOUND": {"reference_id"},
        "IDEMPOTENCY_CONFLICT": {"reference_id", "transaction_id"},
        "INSUFFICIENT_FUNDS": {"required", "available"},
        "BALANCE_LIMIT_EXCEEDED": {"amount", "balance", "limit"},
        "FORBIDDEN": {"required_scope"},
    }
    for entry in spec()["x-error-codes"]:
        body = resolve(resolve({"$ref": entry["schema"]})["properties"]["error"])
        details = resolve(body["properties"]["details"])
        keys = expected.get(entry["code"], set())
        assert set(details.get("properties", {})) == keys, entry["code"]
        assert set(details.get("required", [])) == keys, entry["code"]
        assert details["additionalProperties"] is False
    field_error = resolve(spec()["components"]["schemas"]["ValidationErrorDetails"]["properties"]["errors"]["items"])
    assert set(field_error["required"]) == {"field", "message"}


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
    assert components["Retry-After"]["required"] is True
    assert components["WWW-Authenticate"]["required"] is True
    assert components["WWW-Authenticate"]["schema"]["enum"] == ["Bearer"]
    for method, path, op in operations():
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            where = (method, path, status)
            assert all(set(h) == {"$ref"} for h in headers.values()), where
            assert headers.get("X-Request-Id") == {"$ref": "#/components/headers/X-Request-Id"}, where
            replay = method == "post" and status == "200"
            assert ("Idempotent-Replayed" in headers) == replay, where
            # GET /health answers its own 503 (status unhealthy), without Retry-After
            assert ("Retry-After" in headers) == (status == "503" and path != "/health"), where
            assert ("WWW-Authenticate" in headers) == (status == "401"), where


def test_every_route_is_named_after_its_operation():
    """service/auth.py finds a route's scope by the route's name: the operationId."""
    names = {route.name for route in app_module.create_app("postgresql://unused").router.routes() if route.name} - {
        "docs",
        "docsAsset",
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


# ---------------------------------------------------------------- limits (service/limits.py)

AMOUNT_FIELDS = {"amount", "required"}  # 1 .. MAX_AMOUNT
BALANCE_FIELDS = {"balance", "balance_after", "available"}  # 0 .. MAX_AMOUNT
ID_FIELDS = {
    "user_id",
    "asset_code",
    "reference_id",
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


def test_limits_stated_in_words_match_the_service():
    """413's body limit, and the 2^n-1 bounds, where the descriptions spell them out."""
    text = json.dumps(spec())
    kib = MAX_BODY_BYTES // 1024
    assert kib * 1024 == MAX_BODY_BYTES
    assert set(re.findall(r"(\d+) KiB", text)) == {str(kib)}
    too_large = [r for _, _, op in operations() for s, r in op["responses"].items() if s == "413"]
    assert too_large and all(f"{kib} KiB" in r["description"] for r in too_large)
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
