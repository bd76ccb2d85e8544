"""The HTTP API against a real database: every endpoint, the contract's answers and error codes."""

from __future__ import annotations

import re

import pytest

from service.app import create_app
from service.limits import MAX_AMOUNT
from tests.api.helpers import error_of, snapshot, topup_body, violations

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
async def client(aiohttp_client, app_url, auth_headers):
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=10), headers=auth_headers)


async def test_health_reports_healthy_database(client):
    r = await client.get("/api/v1/health")
    assert r.status == 200
    body = await r.json()
    assert body["status"] == "healthy" and body["service"] == "wallet-service" and body["database"] == "ok"
    assert ISO_Z.match(body["timestamp"])


async def test_balance_lists_every_asset_held(client):
    r = await client.get("/api/v1/wallets/user_alice/balance")
    assert r.status == 200
    body = await r.json()
    assert body["user_id"] == "user_alice"
    got = {b["asset_code"]: (b["asset_name"], b["balance"]) for b in body["balances"]}
    assert got == {"GOLD_COINS": ("Gold Coins", 100000), "DIAMONDS": ("Diamonds", 500)}
    assert all(ISO_Z.match(b["last_updated"]) for b in body["balances"])


async def test_balance_of_one_asset_never_held_is_zero_and_null(client):
    r = await client.get("/api/v1/wallets/user_alice/balance", params={"asset_code": "LOYALTY_POINTS"})
    assert r.status == 200
    assert (await r.json())["balances"] == [
        {
            "asset_code": "LOYALTY_POINTS",
            "asset_name": "Loyalty Points",
            "balance": 0,
            "last_updated": None,
            "held": 0,
            "available": 0,
        }
    ]


async def test_topup_posts_then_replays(client, conn):
    r = await client.post(
        "/api/v1/wallets/topup", json=topup_body(payment_method="stripe", metadata={"order_id": "ORD-1"})
    )
    assert r.status == 201
    assert "Idempotent-Replayed" not in r.headers
    first = await r.json()
    assert UUID.match(first["transaction_id"]) and ISO_Z.match(first["timestamp"])
    assert {k: first[k] for k in ("user_id", "asset_code", "amount", "balance", "transaction_type")} == {
        "user_id": "user_alice",
        "asset_code": "GOLD_COINS",
        "amount": 5000,
        "balance": 105000,
        "transaction_type": "TOPUP",
    }
    before = snapshot(conn)
    again = await client.post("/api/v1/wallets/topup", json=topup_body(payment_method="stripe"))
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == first
    assert snapshot(conn) == before


async def test_bonus_credits_the_bonus_pool_way(client):
    r = await client.post(
        "/api/v1/wallets/bonus", json=topup_body(reference_id="b1", amount=1000, bonus_type="DAILY_LOGIN")
    )
    assert r.status == 201
    body = await r.json()
    assert body["transaction_type"] == "BONUS" and body["balance"] == 101000 and body["amount"] == 1000


async def test_spend_debits_the_player(client):
    r = await client.post(
        "/api/v1/wallets/spend", json=topup_body(reference_id="s1", amount=2500, item_id="dragon_skin")
    )
    assert r.status == 201
    body = await r.json()
    assert body["transaction_type"] == "SPEND" and body["balance"] == 97500
    bal = await (await client.get("/api/v1/wallets/user_alice/balance?asset_code=GOLD_COINS")).json()
    assert bal["balances"][0]["balance"] == 97500


async def test_topup_opens_a_wallet_for_a_new_player(client):
    r = await client.post(
        "/api/v1/wallets/topup",
        json=topup_body(user_id="user_new", asset_code="DIAMONDS", amount=7, reference_id="new1"),
    )
    assert r.status == 201 and (await r.json())["balance"] == 7
    bal = await (await client.get("/api/v1/wallets/user_new/balance")).json()
    assert [(b["asset_code"], b["balance"]) for b in bal["balances"]] == [("DIAMONDS", 7)]


async def test_amounts_are_json_integers_up_to_2_pow_53_minus_1(client):
    r = await client.post(
        "/api/v1/wallets/topup", json=topup_body(user_id="whale", amount=MAX_AMOUNT, reference_id="whale1")
    )
    assert r.status == 201
    text = await r.text()
    assert f'"amount": {MAX_AMOUNT}' in text and f'"balance": {MAX_AMOUNT}' in text


async def test_transaction_details_list_every_ledger_entry(client):
    posted = await (await client.post("/api/v1/wallets/topup", json=topup_body(metadata={"k": [1, 2]}))).json()
    r = await client.get("/api/v1/transactions/topup_t1")
    assert r.status == 200
    body = await r.json()
    assert body["transaction_id"] == posted["transaction_id"]
    assert {k: body[k] for k in ("reference_id", "status", "type", "user_id", "asset_code", "amount", "metadata")} == {
        "reference_id": "topup_t1",
        "status": "COMPLETED",
        "type": "TOPUP",
        "user_id": "user_alice",
        "asset_code": "GOLD_COINS",
        "amount": 5000,
        "metadata": {"k": [1, 2]},
    }
    assert ISO_Z.match(body["created_at"])
    entries = sorted((e["entry_type"], e["amount"], e["wallet_name"]) for e in body["ledger_entries"])
    assert entries == [("CREDIT", 5000, "Alice"), ("DEBIT", 5000, "Gold Coins Treasury")]
    assert all(isinstance(e["wallet_id"], int) for e in body["ledger_entries"])


async def test_seeded_transaction_is_an_initial_balance(client):
    body = await (await client.get("/api/v1/transactions/init_alice_gold_001")).json()
    assert body["type"] == "INITIAL_BALANCE" and body["amount"] == 100000 and body["metadata"] is None


async def test_history_is_newest_first_with_balance_after(client):
    await client.post("/api/v1/wallets/topup", json=topup_body(reference_id="h1", amount=10))
    await client.post("/api/v1/wallets/spend", json=topup_body(reference_id="h2", amount=3, item_id="x"))
    r = await client.get("/api/v1/wallets/user_alice/transactions?asset_code=GOLD_COINS")
    assert r.status == 200
    body = await r.json()
    assert body["user_id"] == "user_alice" and body["asset_code"] == "GOLD_COINS"
    rows = [(t["reference_id"], t["type"], t["amount"], t["balance_after"]) for t in body["transactions"]]
    assert rows == [
        ("h2", "SPEND", 3, 100007),
        ("h1", "TOPUP", 10, 100010),
        ("init_alice_gold_001", "INITIAL_BALANCE", 100000, 100000),
    ]
    assert body["transactions"][0]["description"] == "Purchase: x"
    assert body["pagination"] == {"limit": 50, "offset": 0, "has_more": False, "next_cursor": None}


async def test_history_cursor_pages_cover_everything_once(client):
    for i in range(7):
        assert (
            await client.post("/api/v1/wallets/topup", json=topup_body(reference_id=f"p{i}", amount=i + 1))
        ).status == 201
    seen, cursor, pages = [], None, 0
    while True:
        params = {"asset_code": "GOLD_COINS", "limit": "3"} | ({"cursor": cursor} if cursor else {})
        body = await (await client.get("/api/v1/wallets/user_alice/transactions", params=params)).json()
        pages += 1
        seen += [t["reference_id"] for t in body["transactions"]]
        cursor = body["pagination"]["next_cursor"]
        assert (cursor is not None) == body["pagination"]["has_more"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"p{i}" for i in reversed(range(7))] + ["init_alice_gold_001"]
    by_offset = await (
        await client.get(
            "/api/v1/wallets/user_alice/transactions", params={"asset_code": "GOLD_COINS", "limit": "3", "offset": "3"}
        )
    ).json()
    assert [t["reference_id"] for t in by_offset["transactions"]] == seen[3:6]
    assert by_offset["pagination"]["has_more"] is True


async def test_history_of_an_asset_never_held_is_empty(client):
    body = await (await client.get("/api/v1/wallets/user_bob/transactions?asset_code=DIAMONDS")).json()
    assert body["transactions"] == [] and body["pagination"]["has_more"] is False


# ---------------------------------------------------------------- contract errors, and nothing written


async def _failing(client, conn, method, path, status, code, **kwargs) -> dict:
    before = snapshot(conn)
    r = await client.request(method, path, **kwargs)
    assert r.status == status, await r.text()
    error = await error_of(r)
    assert error["code"] == code
    assert error["message"]
    assert snapshot(conn) == before
    assert violations(conn) == []
    return error


async def test_spend_above_balance_is_insufficient_funds(client, conn):
    error = await _failing(
        client,
        conn,
        "POST",
        "/api/v1/wallets/spend",
        422,
        "INSUFFICIENT_FUNDS",
        json=topup_body(user_id="user_bob", amount=50001, reference_id="s", item_id="i"),
    )
    assert error["details"] == {"asset_code": "GOLD_COINS", "required": 50001, "available": 50000, "held": 0}


async def test_spend_by_player_without_wallet_is_wallet_not_found(client, conn):
    await _failing(
        client,
        conn,
        "POST",
        "/api/v1/wallets/spend",
        404,
        "WALLET_NOT_FOUND",
        json=topup_body(user_id="nobody", reference_id="s", item_id="i"),
    )


async def test_spend_of_asset_never_held_is_insufficient_funds(client, conn):
    error = await _failing(
        client,
        conn,
        "POST",
        "/api/v1/wallets/spend",
        422,
        "INSUFFICIENT_FUNDS",
        json=topup_body(user_id="user_bob", asset_code="DIAMONDS", amount=1, reference_id="s", item_id="i"),
    )
    assert error["details"] == {"asset_code": "DIAMONDS", "required": 1, "available": 0, "held": 0}


@pytest.mark.parametrize(
    "path", ["/api/v1/wallets/nobody/balance", "/api/v1/wallets/nobody/transactions?asset_code=GOLD_COINS"]
)
async def test_reads_of_unknown_player_are_wallet_not_found(client, conn, path):
    await _failing(client, conn, "GET", path, 404, "WALLET_NOT_FOUND")


@pytest.mark.parametrize(
    "method,path,kwargs",
    [
        ("POST", "/api/v1/wallets/topup", {"json": topup_body(asset_code="RUBIES")}),
        ("POST", "/api/v1/wallets/bonus", {"json": topup_body(asset_code="RUBIES", bonus_type="T")}),
        ("POST", "/api/v1/wallets/spend", {"json": topup_body(asset_code="RUBIES", item_id="i")}),
        ("GET", "/api/v1/wallets/user_alice/balance?asset_code=RUBIES", {}),
        ("GET", "/api/v1/wallets/user_alice/transactions?asset_code=RUBIES", {}),
    ],
)
async def test_unknown_asset_is_asset_not_found(client, conn, method, path, kwargs):
    await _failing(client, conn, method, path, 404, "ASSET_NOT_FOUND", **kwargs)


async def test_unknown_reference_is_transaction_not_found(client, conn):
    await _failing(client, conn, "GET", "/api/v1/transactions/never_posted", 404, "TRANSACTION_NOT_FOUND")


async def test_balance_limit_is_enforced(client, conn):
    await _failing(
        client,
        conn,
        "POST",
        "/api/v1/wallets/topup",
        422,
        "BALANCE_LIMIT_EXCEEDED",
        json=topup_body(amount=MAX_AMOUNT - 99999),
    )


@pytest.mark.parametrize(
    "second",
    [
        {"amount": 5001},
        {"user_id": "user_bob"},
        {"asset_code": "DIAMONDS"},
        {"payment_method": "paypal"},
    ],
)
async def test_key_reused_for_a_different_request_is_a_conflict(client, conn, second):
    first = await (await client.post("/api/v1/wallets/topup", json=topup_body())).json()
    error = await _failing(
        client, conn, "POST", "/api/v1/wallets/topup", 409, "IDEMPOTENCY_CONFLICT", json=topup_body(**second)
    )
    assert error["details"]["transaction_id"] == first["transaction_id"]


async def test_key_reused_across_operation_types_is_a_conflict(client, conn):
    first = await (await client.post("/api/v1/wallets/topup", json=topup_body())).json()
    error = await _failing(
        client, conn, "POST", "/api/v1/wallets/bonus", 409, "IDEMPOTENCY_CONFLICT", json=topup_body(bonus_type="T")
    )
    assert error["details"]["transaction_id"] == first["transaction_id"]


async def test_idempotency_key_header_alone_is_the_reference_id(client, conn):
    body = topup_body()
    del body["reference_id"]
    r = await client.post("/api/v1/wallets/topup", json=body, headers={"Idempotency-Key": "hdr_1"})
    assert r.status == 201
    tx = await (await client.get("/api/v1/transactions/hdr_1")).json()
    assert tx["transaction_id"] == (await r.json())["transaction_id"]
    again = await client.post("/api/v1/wallets/topup", json=topup_body(reference_id="hdr_1"))
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"


async def test_idempotency_key_header_equal_to_body_is_fine(client):
    r = await client.post("/api/v1/wallets/topup", json=topup_body(), headers={"Idempotency-Key": "topup_t1"})
    assert r.status == 201


async def test_idempotency_key_header_differing_from_body_is_400(client, conn):
    error = await _failing(
        client,
        conn,
        "POST",
        "/api/v1/wallets/topup",
        400,
        "VALIDATION_ERROR",
        json=topup_body(),
        headers={"Idempotency-Key": "other"},
    )
    assert error["details"]["errors"] == [
        {"field": "reference_id", "message": "differs from the Idempotency-Key header"}
    ]


async def test_unknown_route_is_not_found(client, conn):
    for path in ("/api/v1/nope", "/", "/api/v2/health", "/api/v1/wallets/user_alice"):
        await _failing(client, conn, "GET", path, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/v1/wallets/topup"),
        ("PUT", "/api/v1/wallets/spend"),
        ("DELETE", "/api/v1/wallets/bonus"),
        ("POST", "/api/v1/health"),
        ("POST", "/api/v1/wallets/user_alice/balance"),
        ("PATCH", "/api/v1/transactions/init_alice_gold_001"),
    ],
)
async def test_wrong_method_is_method_not_allowed(client, conn, method, path):
    await _failing(client, conn, method, path, 405, "METHOD_NOT_ALLOWED")


async def test_body_over_64_kib_is_payload_too_large(client, conn):
    body = topup_body(metadata={"pad": "x" * (64 * 1024)})
    await _failing(client, conn, "POST", "/api/v1/wallets/topup", 413, "PAYLOAD_TOO_LARGE", json=body)


async def test_body_just_under_64_kib_is_accepted(client):
    body = topup_body(metadata={"pad": "x" * (60 * 1024)})
    assert (await client.post("/api/v1/wallets/topup", json=body)).status == 201


async def test_request_id_is_echoed_or_generated_and_logged(client, caplog):
    caplog.set_level("INFO", logger="service.access")
    r = await client.get("/api/v1/health", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    generated = (await client.get("/api/v1/nope")).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    hostile = (await client.get("/api/v1/health", headers={"X-Request-Id": "a b\tc"})).headers["X-Request-Id"]
    assert hostile != "a b\tc" and re.fullmatch(r"[0-9a-f]{32}", hostile)
    # the access line's fields are attributes of its record (the JSON formatter writes them as fields)
    lines = [vars(rec) for rec in caplog.records if rec.name == "service.access"]
    assert {"abc-123", generated} <= {line["request_id"] for line in lines}
    nf = next(line for line in lines if line["request_id"] == generated)
    assert nf["status"] == 404 and nf["error"] == "NOT_FOUND" and nf["path"] == "/api/v1/nope"
    assert nf["event"] == "request" and nf["route"] == "unmatched" and nf["method"] == "GET"
