"""The OpenAPI document is valid, covers every route of the app and every error code, and is served."""

from __future__ import annotations

import json
import re

import pytest
from openapi_spec_validator import validate

from service import app as app_module
from service.api_errors import API_ERRORS
from service.docs import spec

BASE = app_module.API


def app_routes() -> set[tuple[str, str]]:
    app = app_module.create_app("postgresql://unused")
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        assert path.startswith(BASE + "/"), path
        out.add((route.method.lower(), path[len(BASE) :]))
    return out


def doc_routes() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in spec()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_document_is_valid_openapi_3():
    assert spec()["openapi"].startswith("3.")
    validate(spec())


def test_every_route_is_documented_and_nothing_else():
    assert app_routes() == doc_routes()
    assert spec()["servers"][0]["url"] == BASE


def test_every_error_code_is_documented_with_its_status():
    documented = {e["code"]: e["status"] for e in spec()["x-error-codes"]}
    assert documented == API_ERRORS
    enum = spec()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert sorted(enum) == sorted(API_ERRORS)


def test_every_error_status_appears_on_some_operation():
    statuses = {
        status for item in spec()["paths"].values() for op in item.values() for status in op.get("responses", {})
    }
    # 404 NOT_FOUND / 405 METHOD_NOT_ALLOWED concern routes that do not exist, so no operation lists them
    for code, status in API_ERRORS.items():
        if code not in ("NOT_FOUND", "METHOD_NOT_ALLOWED"):
            assert str(status) in statuses, code


def test_every_operation_response_names_its_error_codes():
    text = json.dumps(spec())
    for code in API_ERRORS:
        assert code in text


def test_posting_schemas_match_the_validator():
    from service.limits import MAX_AMOUNT
    from service.validation import OPERATION_FIELDS

    for op, (field, required) in OPERATION_FIELDS.items():
        schema = spec()["paths"][f"/wallets/{op}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert field in schema["properties"]
        assert (field in schema["required"]) == required
        assert schema["properties"]["amount"]["maximum"] == MAX_AMOUNT
        assert schema["additionalProperties"] is False


@pytest.fixture
async def client(aiohttp_client, db_url):
    return await aiohttp_client(app_module.create_app(db_url, pool_min_size=1, pool_max_size=2))


async def test_document_and_docs_page_are_served(client):
    r = await client.get(f"{BASE}/openapi.json")
    assert r.status == 200 and r.content_type == "application/json"
    assert await r.json() == spec()
    page = await client.get(f"{BASE}/docs")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    for _method, path in doc_routes():
        assert f"<code>{path}</code>" in html
    for code in API_ERRORS:
        assert code in html
    assert not re.search(r"<script|https?://", html)  # self-contained: no scripts, no CDN
