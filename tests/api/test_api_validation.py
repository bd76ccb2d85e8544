"""Shape and type checks: every bad request is a 400 with details.errors [{field, message}] and writes nothing."""

from __future__ import annotations

import pytest

from service.app import create_app
from service.limits import MAX_AMOUNT
from tests.api.helpers import error_of, snapshot, topup_body, violations


@pytest.fixture
async def client(aiohttp_client, app_url, auth_headers):
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=4), headers=auth_headers)


def without(field: str, **extra) -> dict:
    body = topup_body(**extra)
    del body[field]
    return body


BAD_POSTINGS = [
    ("topup", without("user_id"), "user_id"),
    ("topup", without("asset_code"), "asset_code"),
    ("topup", without("amount"), "amount"),
    ("topup", without("reference_id"), "reference_id"),
    ("topup", topup_body(amount=100.0), "amount"),
    ("topup", topup_body(amount=1.5), "amount"),
    ("topup", topup_body(amount=True), "amount"),
    ("topup", topup_body(amount="100"), "amount"),
    ("topup", topup_body(amount=0), "amount"),
    ("topup", topup_body(amount=-5), "amount"),
    ("topup", topup_body(amount=MAX_AMOUNT + 1), "amount"),
    ("topup", topup_body(amount=None), "amount"),
    ("topup", topup_body(amount=[1]), "amount"),
    ("topup", topup_body(user_id="u" * 129), "user_id"),
    ("topup", topup_body(user_id=""), "user_id"),
    ("topup", topup_body(user_id=42), "user_id"),
    ("topup", topup_body(reference_id="r" * 129), "reference_id"),
    ("topup", topup_body(reference_id=""), "reference_id"),
    ("topup", topup_body(asset_code=7), "asset_code"),
    ("topup", topup_body(payment_method=5), "payment_method"),
    ("topup", topup_body(payment_method=""), "payment_method"),
    ("topup", topup_body(metadata=[1, 2]), "metadata"),
    ("topup", topup_body(metadata="note"), "metadata"),
    ("topup", topup_body(metadata=3), "metadata"),
    # PostgreSQL's jsonb holds neither NUL nor a lone surrogate: in a value, in a key (with a clean value), nested
    ("topup", topup_body(metadata={"note": "a\u0000b"}), "metadata"),
    ("topup", topup_body(metadata={"k\u0000": "clean"}), "metadata"),
    ("topup", topup_body(metadata={"deep": [{"x": "\ud800"}]}), "metadata"),
    ("topup", topup_body(surprise=1), "surprise"),
    ("topup", topup_body(item_id="i"), "item_id"),
    ("bonus", topup_body(), "bonus_type"),
    ("bonus", topup_body(bonus_type="b" * 129), "bonus_type"),
    ("spend", topup_body(), "item_id"),
    ("spend", topup_body(item_id=None), "item_id"),
    ("spend", topup_body(item_id="i", amount=2.0), "amount"),
]


@pytest.mark.parametrize("operation,body,field", BAD_POSTINGS)
async def test_bad_posting_is_validation_error(client, conn, operation, body, field):
    before = snapshot(conn)
    r = await client.post(f"/api/v1/wallets/{operation}", json=body)
    assert r.status == 400
    error = await error_of(r)
    assert error["code"] == "VALIDATION_ERROR"
    assert field in [e["field"] for e in error["details"]["errors"]]
    assert all(set(e) == {"field", "message"} and e["message"] for e in error["details"]["errors"])
    assert snapshot(conn) == before
    assert violations(conn) == []


async def test_every_problem_is_reported_at_once(client):
    r = await client.post("/api/v1/wallets/spend", json={"amount": 1.5, "user_id": ""})
    fields = sorted(e["field"] for e in (await error_of(r))["details"]["errors"])
    assert fields == ["amount", "asset_code", "item_id", "reference_id", "user_id"]


async def test_over_long_idempotency_key_header_is_rejected(client, conn):
    before = snapshot(conn)
    body = without("reference_id")
    r = await client.post("/api/v1/wallets/topup", json=body, headers={"Idempotency-Key": "k" * 129})
    assert r.status == 400
    assert [e["field"] for e in (await error_of(r))["details"]["errors"]] == ["Idempotency-Key"]
    assert snapshot(conn) == before


async def test_null_optional_fields_are_absent(client):
    r = await client.post("/api/v1/wallets/topup", json=topup_body(payment_method=None, metadata=None))
    assert r.status == 201


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'"text"',
        b"42",
        b"null",
        b'{"amount": NaN}',
        b'{"a": 1',
        b"\xff\xfe{}",
        b'{"amount": Infinity}',
        b"[" * 30000 + b"]" * 30000,
    ],
)
async def test_body_that_is_not_a_json_object_is_invalid_json(client, conn, raw):
    before = snapshot(conn)
    r = await client.post("/api/v1/wallets/topup", data=raw, headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert (await error_of(r))["code"] == "INVALID_JSON"
    assert snapshot(conn) == before


HISTORY = "/api/v1/wallets/user_alice/transactions"


@pytest.mark.parametrize(
    "query,field",
    [
        ("", "asset_code"),
        ("asset_code=GOLD_COINS&limit=0", "limit"),
        ("asset_code=GOLD_COINS&limit=101", "limit"),
        ("asset_code=GOLD_COINS&limit=abc", "limit"),
        ("asset_code=GOLD_COINS&limit=-1", "limit"),
        ("asset_code=GOLD_COINS&limit=1.5", "limit"),
        ("asset_code=GOLD_COINS&limit=", "limit"),
        ("asset_code=GOLD_COINS&offset=-1", "offset"),
        ("asset_code=GOLD_COINS&offset=x", "offset"),
        ("asset_code=GOLD_COINS&offset=99999999999", "offset"),
        ("asset_code=GOLD_COINS&limit=5&limit=6", "limit"),
        ("asset_code=GOLD_COINS&cursor=garbage", "cursor"),
        ("asset_code=GOLD_COINS&cursor=ZTE6MTE!!", "cursor"),
        ("asset_code=GOLD_COINS&cursor=", "cursor"),
        ("asset_code=GOLD_COINS&sort=asc", "sort"),
        ("asset_code=", "asset_code"),
    ],
)
async def test_bad_history_query_is_validation_error(client, query, field):
    r = await client.get(f"{HISTORY}?{query}")
    assert r.status == 400
    error = await error_of(r)
    assert error["code"] == "VALIDATION_ERROR"
    assert field in [e["field"] for e in error["details"]["errors"]]


@pytest.mark.parametrize(
    "path,field",
    [
        ("/api/v1/wallets/user_alice/balance?assetcode=GOLD_COINS", "assetcode"),
        ("/api/v1/wallets/user_alice/balance?asset_code=GOLD_COINS&asset_code=DIAMONDS", "asset_code"),
        ("/api/v1/wallets/" + "u" * 129 + "/balance", "user_id"),
        ("/api/v1/wallets/" + "u" * 129 + "/transactions?asset_code=GOLD_COINS", "user_id"),
        ("/api/v1/transactions/" + "r" * 129, "reference_id"),
    ],
)
async def test_bad_read_is_validation_error(client, path, field):
    r = await client.get(path)
    assert r.status == 400
    assert field in [e["field"] for e in (await error_of(r))["details"]["errors"]]


async def test_history_limit_bounds_are_inclusive(client):
    for limit in ("1", "100"):
        r = await client.get(f"{HISTORY}?asset_code=GOLD_COINS&limit={limit}")
        assert r.status == 200
        assert (await r.json())["pagination"]["limit"] == int(limit)
