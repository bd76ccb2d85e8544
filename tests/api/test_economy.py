"""Economy operations over HTTP against a real database: purchases (1 to 3 assets, all or nothing),
reversals (refund, chargeback, clawback; never beyond the original), holds (reserve, capture, void, expiry
without a job), balances at an instant, the transaction lookup's new fields, the scopes of the new routes,
and concurrent requests through the service."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, timedelta, timezone
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from service.app import create_app
from service.limits import DEFAULT_HOLD_SECONDS, MAX_AMOUNT, MAX_HOLD_SECONDS, MAX_PRICE_LEGS, WALLET_CONCURRENCY
from tests.access import bearer, create_key
from tests.api.helpers import error_of, snapshot, violations

API = "/api/v1"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
REPLAYED = "Idempotent-Replayed"
EXPIRY_WAIT = 1.2  # seconds: past a hold made with expires_in 1


@pytest.fixture
async def client(aiohttp_client, app_url, auth_headers):
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=10), headers=auth_headers)


def ref(prefix: str = "eco") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def price(*legs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"asset_code": code, "amount": amount} for code, amount in legs]


def purchase_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": "user_alice",
        "reference_id": ref("buy"),
        "item_id": "dragon_bundle",
        "price": price(("GOLD_COINS", 100), ("DIAMONDS", 5)),
    }
    body.update(overrides)
    return body


def hold_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": "user_bob",
        "asset_code": "GOLD_COINS",
        "amount": 100,
        "reference_id": ref("hold"),
    }
    body.update(overrides)
    return body


def state(conn: psycopg.Connection) -> tuple:
    """snapshot() plus every hold as it is stored: what a refused request must leave untouched."""
    holds = conn.execute("SELECT reference_id, status::text, captured_amount FROM holds ORDER BY id").fetchall()
    return (snapshot(conn), holds)


async def post(client, path: str, body: Any = None, **kwargs: Any):
    if body is not None:
        kwargs["json"] = body
    return await client.post(f"{API}{path}", **kwargs)


async def get(client, path: str, **kwargs: Any):
    return await client.get(f"{API}{path}", **kwargs)


async def refused(client, conn, status: int, code: str, method: str, path: str, **kwargs: Any) -> dict:
    """The request fails with this status and code, and the ledger and the holds are unchanged."""
    before = state(conn)
    r = await client.request(method, f"{API}{path}", **kwargs)
    assert r.status == status, await r.text()
    error = await error_of(r)
    assert error["code"] == code, error
    assert error["message"]
    assert state(conn) == before
    assert violations(conn) == []
    return error


async def balances(client, user: str) -> dict[str, dict]:
    r = await get(client, f"/wallets/{user}/balance")
    assert r.status == 200, await r.text()
    return {b["asset_code"]: b for b in (await r.json())["balances"]}


async def topup(client, user: str, asset: str, amount: int, reference_id: str | None = None) -> dict:
    body = {"user_id": user, "asset_code": asset, "amount": amount, "reference_id": reference_id or ref("top")}
    r = await post(client, "/wallets/topup", body)
    assert r.status == 201, await r.text()
    return await r.json()


async def spend(client, user: str, asset: str, amount: int, reference_id: str | None = None):
    body = {
        "user_id": user,
        "asset_code": asset,
        "amount": amount,
        "reference_id": reference_id or ref("spend"),
        "item_id": "i",
    }
    return await post(client, "/wallets/spend", body)


async def make_hold(client, **overrides: Any) -> dict:
    r = await post(client, "/wallets/hold", hold_body(**overrides))
    assert r.status == 201, await r.text()
    return await r.json()


# ---------------------------------------------------------------- purchases


async def test_a_purchase_debits_every_leg_in_one_transaction(client, conn):
    body = purchase_body(metadata={"order": "ORD-1"})
    r = await post(client, "/wallets/purchase", body)
    assert r.status == 201, await r.text()
    assert REPLAYED not in r.headers
    answer = await r.json()
    assert set(answer) == {"transaction_id", "user_id", "transaction_type", "item_id", "legs", "timestamp"}
    assert UUID.match(answer["transaction_id"]) and ISO_Z.match(answer["timestamp"])
    assert (answer["user_id"], answer["transaction_type"], answer["item_id"]) == (
        "user_alice",
        "PURCHASE",
        "dragon_bundle",
    )
    # asset order, each with the player's balance right after
    assert answer["legs"] == [
        {"asset_code": "DIAMONDS", "amount": 5, "balance": 495},
        {"asset_code": "GOLD_COINS", "amount": 100, "balance": 99900},
    ]
    now = await balances(client, "user_alice")
    assert (now["GOLD_COINS"]["balance"], now["DIAMONDS"]["balance"]) == (99900, 495)

    r = await get(client, f"/transactions/{body['reference_id']}")
    assert r.status == 200
    tx = await r.json()
    assert tx["transaction_id"] == answer["transaction_id"]
    assert (tx["type"], tx["asset_code"], tx["amount"], tx["item_id"]) == ("PURCHASE", None, None, "dragon_bundle")
    assert (tx["original_reference_id"], tx["reason"], tx["metadata"]) == (None, None, {"order": "ORD-1"})
    assert tx["legs"] == [{"asset_code": "DIAMONDS", "amount": 5}, {"asset_code": "GOLD_COINS", "amount": 100}]
    entries = sorted((e["asset_code"], e["entry_type"], e["amount"], e["wallet_name"]) for e in tx["ledger_entries"])
    assert [(a, t, n) for a, t, n, _ in entries] == [
        ("DIAMONDS", "CREDIT", 5),
        ("DIAMONDS", "DEBIT", 5),
        ("GOLD_COINS", "CREDIT", 100),
        ("GOLD_COINS", "DEBIT", 100),
    ]
    assert {name for _, t, _, name in entries if t == "CREDIT"} == {"Gold Coins Revenue", "Diamonds Revenue"}
    assert violations(conn) == []


async def test_a_purchase_with_the_price_in_another_order_is_a_replay(client, conn):
    body = purchase_body()
    first = await post(client, "/wallets/purchase", body)
    assert first.status == 201
    original = await first.json()
    before = state(conn)
    again = dict(body, price=list(reversed(body["price"])))
    r = await post(client, "/wallets/purchase", again)
    assert r.status == 200 and r.headers[REPLAYED] == "true"
    assert await r.json() == original
    assert state(conn) == before


async def test_a_purchase_key_in_the_header_only(client):
    body = purchase_body()
    key = body.pop("reference_id")
    r = await post(client, "/wallets/purchase", body, headers={"Idempotency-Key": key})
    assert r.status == 201, await r.text()
    r = await get(client, f"/transactions/{key}")
    assert r.status == 200 and (await r.json())["type"] == "PURCHASE"


@pytest.mark.parametrize(
    "change",
    [
        {"price": price(("GOLD_COINS", 101), ("DIAMONDS", 5))},
        {"price": price(("GOLD_COINS", 100))},
        {"item_id": "another_item"},
        {"user_id": "user_bob", "price": price(("GOLD_COINS", 100))},
    ],
    ids=["amount", "fewer legs", "item", "player"],
)
async def test_a_purchase_key_reused_for_another_purchase_is_a_conflict(client, conn, change):
    body = purchase_body()
    r = await post(client, "/wallets/purchase", body)
    assert r.status == 201
    transaction_id = (await r.json())["transaction_id"]
    error = await refused(
        client, conn, 409, "IDEMPOTENCY_CONFLICT", "POST", "/wallets/purchase", json=dict(body, **change)
    )
    assert error["details"] == {"reference_id": body["reference_id"], "transaction_id": transaction_id}


async def test_a_purchase_short_in_one_asset_debits_no_asset(client, conn):
    body = purchase_body(price=price(("GOLD_COINS", 10), ("DIAMONDS", 501)))
    error = await refused(client, conn, 422, "INSUFFICIENT_FUNDS", "POST", "/wallets/purchase", json=body)
    assert error["details"] == {"asset_code": "DIAMONDS", "required": 501, "available": 500, "held": 0}
    # bob has no DIAMONDS wallet at all
    body = purchase_body(user_id="user_bob", price=price(("GOLD_COINS", 1), ("DIAMONDS", 1)))
    error = await refused(client, conn, 422, "INSUFFICIENT_FUNDS", "POST", "/wallets/purchase", json=body)
    assert error["details"] == {"asset_code": "DIAMONDS", "required": 1, "available": 0, "held": 0}
    now = await balances(client, "user_alice")
    assert (now["GOLD_COINS"]["balance"], now["DIAMONDS"]["balance"]) == (100000, 500)


async def test_a_purchase_of_an_unknown_asset_or_by_an_unknown_player_is_404(client, conn):
    body = purchase_body(price=price(("GOLD_COINS", 1), ("NO_SUCH_ASSET", 1)))
    error = await refused(client, conn, 404, "ASSET_NOT_FOUND", "POST", "/wallets/purchase", json=body)
    assert error["details"] == {"asset_code": "NO_SUCH_ASSET"}
    error = await refused(
        client, conn, 404, "WALLET_NOT_FOUND", "POST", "/wallets/purchase", json=purchase_body(user_id="nobody")
    )
    assert error["details"] == {"user_id": "nobody"}


LEG = {"asset_code": "GOLD_COINS", "amount": 1}


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"price": None}, ["price"]),
        ({"price": {"asset_code": "GOLD_COINS", "amount": 1}}, ["price"]),
        ({"price": []}, ["price"]),
        (
            {"price": price(("GOLD_COINS", 1), ("DIAMONDS", 1), ("LOYALTY_POINTS", 1), ("OTHER", 1))},
            ["price"],
        ),
        ({"price": ["GOLD_COINS"]}, ["price[0]"]),
        ({"price": [LEG, {"asset_code": "DIAMONDS", "amount": 1, "note": "x"}]}, ["price[1].note"]),
        ({"price": [{"amount": 1}]}, ["price[0].asset_code"]),
        ({"price": [{"asset_code": "GOLD_COINS"}]}, ["price[0].amount"]),
        ({"price": [{"asset_code": "", "amount": 1}]}, ["price[0].asset_code"]),
        ({"price": [{"asset_code": 7, "amount": 1}]}, ["price[0].asset_code"]),
        ({"price": [{"asset_code": "GOLD\u200bCOINS", "amount": 1}]}, ["price[0].asset_code"]),
        ({"price": price(("GOLD_COINS", 0))}, ["price[0].amount"]),
        ({"price": price(("GOLD_COINS", MAX_AMOUNT + 1))}, ["price[0].amount"]),
        ({"price": [{"asset_code": "GOLD_COINS", "amount": 1.5}]}, ["price[0].amount"]),
        ({"price": [{"asset_code": "GOLD_COINS", "amount": 1.0}]}, ["price[0].amount"]),
        ({"price": [{"asset_code": "GOLD_COINS", "amount": "5"}]}, ["price[0].amount"]),
        ({"price": [{"asset_code": "GOLD_COINS", "amount": True}]}, ["price[0].amount"]),
        ({"price": [LEG, {"asset_code": "GOLD_COINS", "amount": 2}]}, ["price"]),
        ({"item_id": None}, ["item_id"]),
        ({"user_id": "u" * 129}, ["user_id"]),
        ({"metadata": [1]}, ["metadata"]),
        ({"asset_code": "GOLD_COINS"}, ["asset_code"]),
        ({"reference_id": None}, ["reference_id"]),
    ],
)
async def test_a_purchase_of_the_wrong_shape_is_a_validation_error(client, conn, change, fields):
    body = purchase_body(**change)
    body = {k: v for k, v in body.items() if v is not None}
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "POST", "/wallets/purchase", json=body)
    assert [e["field"] for e in error["details"]["errors"]] == fields


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        (
            "/wallets/purchase",
            {"user_id": "", "reference_id": "k", "item_id": "i", "note": 1,
             "price": [LEG, {"asset_code": "GOLD_COINS", "amount": 0}, {"asset_code": "DIAMONDS", "amount": 1}]},
            ["note", "user_id", "price[1].amount", "price"],
        ),
        (
            "/wallets/reverse",
            {"reference_id": "k", "original_reference_id": "", "amount": 0},
            ["original_reference_id", "reason", "amount"],
        ),
        (
            "/wallets/hold",
            {"user_id": "u", "asset_code": "A", "amount": 0, "reference_id": "k", "expires_in": MAX_HOLD_SECONDS + 1,
             "item_id": ""},
            ["amount", "expires_in", "item_id"],
        ),
    ],
)  # fmt: skip
async def test_every_problem_of_a_request_is_reported_at_once(client, conn, path, body, fields):
    """The service's own checks, not only the function's first complaint: all the problems, in one 400."""
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "POST", path, json=body)
    assert [e["field"] for e in error["details"]["errors"]] == fields
    messages = {e["field"]: e["message"] for e in error["details"]["errors"]}
    if "price" in messages:
        assert "GOLD_COINS" in messages["price"]  # names the asset listed twice


async def test_a_purchase_with_the_most_legs_is_accepted(client, conn):
    await topup(client, "user_alice", "LOYALTY_POINTS", 10)
    legs = price(("GOLD_COINS", 1), ("DIAMONDS", 1), ("LOYALTY_POINTS", 1))
    assert len(legs) == MAX_PRICE_LEGS
    r = await post(client, "/wallets/purchase", purchase_body(price=legs))
    assert r.status == 201, await r.text()
    assert [leg["asset_code"] for leg in (await r.json())["legs"]] == ["DIAMONDS", "GOLD_COINS", "LOYALTY_POINTS"]


async def test_a_purchase_key_in_body_and_header_must_agree(client, conn):
    error = await refused(
        client,
        conn,
        400,
        "VALIDATION_ERROR",
        "POST",
        "/wallets/purchase",
        json=purchase_body(reference_id="a"),
        headers={"Idempotency-Key": "b"},
    )
    assert [e["field"] for e in error["details"]["errors"]] == ["reference_id"]


async def test_a_purchase_needs_what_is_available_not_only_the_balance(client, conn):
    await make_hold(client, user_id="user_alice", asset_code="DIAMONDS", amount=498)
    body = purchase_body(price=price(("GOLD_COINS", 1), ("DIAMONDS", 3)))
    error = await refused(client, conn, 422, "INSUFFICIENT_FUNDS", "POST", "/wallets/purchase", json=body)
    assert error["details"] == {"asset_code": "DIAMONDS", "required": 3, "available": 2, "held": 498}
    r = await post(client, "/wallets/purchase", purchase_body(price=price(("GOLD_COINS", 1), ("DIAMONDS", 2))))
    assert r.status == 201


# ---------------------------------------------------------------- reversals


def reverse_body(original: str, reason: str = "support ticket", **extra: Any) -> dict[str, Any]:
    return {"reference_id": ref("rev"), "original_reference_id": original, "reason": reason, **extra}


async def reverse(client, original: str, reason: str = "support ticket", **extra: Any):
    return await post(client, "/wallets/reverse", reverse_body(original, reason, **extra))


async def test_a_spend_is_refunded_from_revenue_and_the_refund_replays(client, conn):
    assert (await spend(client, "user_bob", "GOLD_COINS", 700, "spend_to_refund")).status == 201
    body = {"reference_id": "refund_1", "original_reference_id": "spend_to_refund", "reason": "never delivered"}
    r = await post(client, "/wallets/reverse", body)
    assert r.status == 201, await r.text()
    assert REPLAYED not in r.headers
    answer = await r.json()
    assert set(answer) == {
        "transaction_id",
        "user_id",
        "transaction_type",
        "original_reference_id",
        "legs",
        "timestamp",
    }
    assert (answer["user_id"], answer["transaction_type"], answer["original_reference_id"]) == (
        "user_bob",
        "REVERSAL",
        "spend_to_refund",
    )
    assert answer["legs"] == [{"asset_code": "GOLD_COINS", "amount": 700, "balance": 50000}]
    assert UUID.match(answer["transaction_id"]) and ISO_Z.match(answer["timestamp"])

    before = state(conn)
    r = await post(client, "/wallets/reverse", body)
    assert r.status == 200 and r.headers[REPLAYED] == "true"
    assert await r.json() == answer
    assert state(conn) == before

    r = await get(client, "/transactions/refund_1")
    tx = await r.json()
    assert (tx["type"], tx["asset_code"], tx["amount"]) == ("REVERSAL", "GOLD_COINS", 700)
    assert (tx["original_reference_id"], tx["reason"]) == ("spend_to_refund", "never delivered")
    assert tx["legs"] == [{"asset_code": "GOLD_COINS", "amount": 700}]
    debited = [e["wallet_name"] for e in tx["ledger_entries"] if e["entry_type"] == "DEBIT"]
    assert debited == ["Gold Coins Revenue"]
    assert violations(conn) == []


@pytest.mark.parametrize(
    "change", [{"reason": "another reason"}, {"amount": 1}, {"original_reference_id": "init_bob_gold_001"}]
)
async def test_a_reversal_key_reused_for_another_reversal_is_a_conflict(client, conn, change):
    assert (await spend(client, "user_bob", "GOLD_COINS", 10, "spend_k")).status == 201
    body = {"reference_id": "rev_k", "original_reference_id": "spend_k", "reason": "r"}
    r = await post(client, "/wallets/reverse", body)
    assert r.status == 201
    error = await refused(
        client, conn, 409, "IDEMPOTENCY_CONFLICT", "POST", "/wallets/reverse", json=dict(body, **change)
    )
    assert error["details"] == {"reference_id": "rev_k", "transaction_id": (await r.json())["transaction_id"]}


async def test_partial_reversals_never_exceed_the_original(client, conn):
    assert (await spend(client, "user_bob", "GOLD_COINS", 100, "spend_partial")).status == 201
    error = await refused(
        client,
        conn,
        422,
        "REVERSAL_EXCEEDS_ORIGINAL",
        "POST",
        "/wallets/reverse",
        json=reverse_body("spend_partial", "r", amount=101),
    )
    assert error["details"] == {
        "original_reference_id": "spend_partial",
        "asset_code": "GOLD_COINS",
        "original_amount": 100,
        "reversed": 0,
        "requested": 101,
    }
    r = await reverse(client, "spend_partial", amount=30)
    assert r.status == 201 and (await r.json())["legs"] == [
        {"asset_code": "GOLD_COINS", "amount": 30, "balance": 49930}
    ]
    r = await reverse(client, "spend_partial", amount=60)
    assert r.status == 201
    error = await refused(
        client,
        conn,
        422,
        "REVERSAL_EXCEEDS_ORIGINAL",
        "POST",
        "/wallets/reverse",
        json=reverse_body("spend_partial", "r", amount=11),
    )
    assert (error["details"]["reversed"], error["details"]["requested"]) == (90, 11)
    # the whole original (no amount) is more than what is left
    error = await refused(
        client,
        conn,
        422,
        "REVERSAL_EXCEEDS_ORIGINAL",
        "POST",
        "/wallets/reverse",
        json=reverse_body("spend_partial", "r"),
    )
    assert (error["details"]["reversed"], error["details"]["requested"]) == (90, 100)
    r = await reverse(client, "spend_partial", amount=10)
    assert r.status == 201 and (await r.json())["legs"][0]["balance"] == 50000
    assert violations(conn) == []


async def test_a_topup_is_charged_back_unless_it_was_spent(client, conn):
    await topup(client, "user_charlie", "GOLD_COINS", 500, "topup_cb")
    r = await reverse(client, "topup_cb", "chargeback")
    assert r.status == 201, await r.text()
    assert (await r.json())["legs"] == [{"asset_code": "GOLD_COINS", "amount": 500, "balance": 25000}]
    # a top-up whose credits were spent since: refused, nothing written
    await topup(client, "user_charlie", "GOLD_COINS", 500, "topup_spent")
    assert (await spend(client, "user_charlie", "GOLD_COINS", 25100)).status == 201
    error = await refused(
        client,
        conn,
        422,
        "INSUFFICIENT_FUNDS",
        "POST",
        "/wallets/reverse",
        json=reverse_body("topup_spent", "chargeback"),
    )
    assert error["details"] == {"asset_code": "GOLD_COINS", "required": 500, "available": 400, "held": 0}
    # the opening balance is a top-up too
    r = await reverse(client, "init_alice_diamonds_001", "fraud", amount=100)
    assert r.status == 201 and (await r.json())["legs"][0]["balance"] == 400
    assert violations(conn) == []


async def test_a_chargeback_needs_what_is_available(client, conn):
    await topup(client, "user_charlie", "GOLD_COINS", 500, "topup_held")
    await make_hold(client, user_id="user_charlie", amount=25001)
    error = await refused(
        client, conn, 422, "INSUFFICIENT_FUNDS", "POST", "/wallets/reverse", json=reverse_body("topup_held", "cb")
    )
    assert error["details"] == {"asset_code": "GOLD_COINS", "required": 500, "available": 499, "held": 25001}


async def test_a_bonus_is_clawed_back_to_the_bonus_pool(client, conn):
    body = {"user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 250, "reference_id": "bonus_cb"}
    assert (await post(client, "/wallets/bonus", dict(body, bonus_type="DAILY"))).status == 201
    r = await reverse(client, "bonus_cb", "abuse")
    assert r.status == 201
    assert (await r.json())["legs"] == [{"asset_code": "GOLD_COINS", "amount": 250, "balance": 50000}]
    reversal_ref = conn.execute(
        "SELECT r.reference_id FROM transactions r JOIN transactions o ON o.id = r.original_id "
        "WHERE o.reference_id = 'bonus_cb'"
    ).fetchone()[0]
    tx = await (await get(client, f"/transactions/{reversal_ref}")).json()
    credited = [e["wallet_name"] for e in tx["ledger_entries"] if e["entry_type"] == "CREDIT"]
    assert credited == ["Gold Coins Bonus Pool"]


async def test_a_purchase_is_reversed_whole_on_every_leg_and_never_in_part(client, conn):
    body = purchase_body(reference_id="buy_to_reverse")
    assert (await post(client, "/wallets/purchase", body)).status == 201
    error = await refused(
        client,
        conn,
        422,
        "NOT_REVERSIBLE",
        "POST",
        "/wallets/reverse",
        json=reverse_body("buy_to_reverse", "r", amount=5),
    )
    assert error["details"] == {"original_reference_id": "buy_to_reverse", "reason": "partial_purchase"}
    r = await post(
        client,
        "/wallets/reverse",
        {"reference_id": "buy_reversed", "original_reference_id": "buy_to_reverse", "reason": "refund"},
    )
    assert r.status == 201, await r.text()
    assert (await r.json())["legs"] == [
        {"asset_code": "DIAMONDS", "amount": 5, "balance": 500},
        {"asset_code": "GOLD_COINS", "amount": 100, "balance": 100000},
    ]
    tx = await (await get(client, "/transactions/buy_reversed")).json()
    assert (tx["type"], tx["asset_code"], tx["amount"], tx["original_reference_id"]) == (
        "REVERSAL",
        None,
        None,
        "buy_to_reverse",
    )
    assert tx["legs"] == [{"asset_code": "DIAMONDS", "amount": 5}, {"asset_code": "GOLD_COINS", "amount": 100}]
    assert len(tx["ledger_entries"]) == 4
    # once is all
    error = await refused(
        client,
        conn,
        422,
        "REVERSAL_EXCEEDS_ORIGINAL",
        "POST",
        "/wallets/reverse",
        json=reverse_body("buy_to_reverse", "r"),
    )
    assert error["details"]["original_reference_id"] == "buy_to_reverse"


async def test_a_reversal_is_not_reversible(client, conn):
    assert (await spend(client, "user_bob", "GOLD_COINS", 10, "spend_rr")).status == 201
    r = await post(
        client, "/wallets/reverse", {"reference_id": "rev_rr", "original_reference_id": "spend_rr", "reason": "r"}
    )
    assert r.status == 201
    error = await refused(
        client, conn, 422, "NOT_REVERSIBLE", "POST", "/wallets/reverse", json=reverse_body("rev_rr", "r")
    )
    assert error["details"] == {"original_reference_id": "rev_rr", "reason": "reversal"}


async def test_a_hold_or_its_capture_is_not_reversible(client, conn):
    held = await make_hold(client, amount=10)
    error = await refused(
        client,
        conn,
        422,
        "NOT_REVERSIBLE",
        "POST",
        "/wallets/reverse",
        json={"reference_id": ref(), "original_reference_id": held["reference_id"], "reason": "r"},
    )
    assert error["details"] == {"original_reference_id": held["reference_id"], "reason": "hold"}
    assert (await post(client, f"/holds/{held['reference_id']}/capture")).status == 201
    error = await refused(
        client,
        conn,
        422,
        "NOT_REVERSIBLE",
        "POST",
        "/wallets/reverse",
        json={"reference_id": ref(), "original_reference_id": held["reference_id"], "reason": "r"},
    )
    assert error["details"] == {"original_reference_id": held["reference_id"], "reason": "hold"}


async def test_a_reversal_of_nothing_is_transaction_not_found(client, conn):
    error = await refused(
        client, conn, 404, "TRANSACTION_NOT_FOUND", "POST", "/wallets/reverse", json=reverse_body("never_posted", "r")
    )
    assert error["details"] == {"reference_id": "never_posted"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"original_reference_id": "init_bob_gold_001"}, ["reason"]),
        ({"reason": "r"}, ["original_reference_id"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": ""}, ["reason"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": "r" * 129}, ["reason"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": "line\nbreak"}, ["reason"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": 5}, ["reason"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": "r", "amount": 0}, ["amount"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": "r", "amount": 2.5}, ["amount"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": "r", "amount": "1"}, ["amount"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": "r", "amount": False}, ["amount"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": "r", "amount": MAX_AMOUNT + 1}, ["amount"]),
        ({"original_reference_id": "init_bob_gold_001", "reason": "r", "user_id": "user_bob"}, ["user_id"]),
    ],
)
async def test_a_reversal_of_the_wrong_shape_is_a_validation_error(client, conn, body, fields):
    error = await refused(
        client, conn, 400, "VALIDATION_ERROR", "POST", "/wallets/reverse", json={"reference_id": ref(), **body}
    )
    assert [e["field"] for e in error["details"]["errors"]] == fields


async def test_a_reversal_key_comes_from_the_body_or_the_header(client, conn):
    body = {"original_reference_id": "init_bob_gold_001", "reason": "r", "amount": 1}
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "POST", "/wallets/reverse", json=body)
    assert [e["field"] for e in error["details"]["errors"]] == ["reference_id"]
    error = await refused(
        client,
        conn,
        400,
        "VALIDATION_ERROR",
        "POST",
        "/wallets/reverse",
        json=dict(body, reference_id="a"),
        headers={"Idempotency-Key": "b"},
    )
    assert [e["field"] for e in error["details"]["errors"]] == ["reference_id"]
    r = await post(client, "/wallets/reverse", body, headers={"Idempotency-Key": "rev_by_header"})
    assert r.status == 201
    assert (await (await get(client, "/transactions/rev_by_header")).json())["type"] == "REVERSAL"


async def test_history_shows_reversals_with_their_original(client, conn):
    assert (await spend(client, "user_bob", "GOLD_COINS", 40, "spend_hist")).status == 201
    r = await post(
        client,
        "/wallets/reverse",
        {"reference_id": "rev_hist", "original_reference_id": "spend_hist", "reason": "r", "amount": 15},
    )
    assert r.status == 201
    r = await get(client, "/wallets/user_bob/transactions", params={"asset_code": "GOLD_COINS"})
    rows = (await r.json())["transactions"]
    assert [
        (t["type"], t["reference_id"], t["amount"], t["balance_after"], t["original_reference_id"]) for t in rows
    ] == [
        ("REVERSAL", "rev_hist", 15, 49975, "spend_hist"),
        ("SPEND", "spend_hist", 40, 49960, None),
        ("INITIAL_BALANCE", "init_bob_gold_001", 50000, 50000, None),
    ]


async def test_history_shows_each_asset_of_a_purchase_as_its_own_entry(client):
    assert (await post(client, "/wallets/purchase", purchase_body(reference_id="buy_hist"))).status == 201
    for asset, amount, after in [("GOLD_COINS", 100, 99900), ("DIAMONDS", 5, 495)]:
        r = await get(client, "/wallets/user_alice/transactions", params={"asset_code": asset})
        newest = (await r.json())["transactions"][0]
        assert (newest["type"], newest["reference_id"], newest["amount"], newest["balance_after"]) == (
            "PURCHASE",
            "buy_hist",
            amount,
            after,
        )
        assert newest["original_reference_id"] is None


# ---------------------------------------------------------------- holds


async def test_a_hold_reserves_without_posting(client, conn):
    before = snapshot(conn)
    r = await post(
        client,
        "/wallets/hold",
        hold_body(reference_id="hold_1", amount=3000, item_id="sword", metadata={"cart": 1}, expires_in=120),
    )
    assert r.status == 201, await r.text()
    assert REPLAYED not in r.headers
    answer = await r.json()
    assert set(answer) == {"reference_id", "user_id", "asset_code", "amount", "status", "expires_at", "available"}
    assert {k: answer[k] for k in ("reference_id", "user_id", "asset_code", "amount", "status", "available")} == {
        "reference_id": "hold_1",
        "user_id": "user_bob",
        "asset_code": "GOLD_COINS",
        "amount": 3000,
        "status": "HELD",
        "available": 47000,
    }
    assert ISO_Z.match(answer["expires_at"])
    assert snapshot(conn) == before  # no transaction, no ledger entry, no balance changed
    gold = (await balances(client, "user_bob"))["GOLD_COINS"]
    assert (gold["balance"], gold["held"], gold["available"]) == (50000, 3000, 47000)

    r = await get(client, "/holds/hold_1")
    assert r.status == 200
    status = await r.json()
    assert status == {
        "reference_id": "hold_1",
        "user_id": "user_bob",
        "asset_code": "GOLD_COINS",
        "amount": 3000,
        "status": "HELD",
        "expires_at": answer["expires_at"],
        "captured_amount": None,
        "item_id": "sword",
        "metadata": {"cart": 1},
        "created_at": status["created_at"],
        "closed_at": None,
        "actor": "test-admin",
    }
    assert ISO_Z.match(status["created_at"])
    expires_in = conn.execute(
        "SELECT extract(epoch FROM expires_at - created_at) FROM holds WHERE reference_id = 'hold_1'"
    ).fetchone()[0]
    assert expires_in == 120
    # no posting yet under the hold's reference id
    r = await get(client, "/transactions/hold_1")
    assert r.status == 404 and (await error_of(r))["code"] == "TRANSACTION_NOT_FOUND"


async def test_a_hold_lasts_the_default_when_no_expiry_is_given(client, conn):
    await make_hold(client, reference_id="hold_default")
    seconds = conn.execute(
        "SELECT extract(epoch FROM expires_at - created_at) FROM holds WHERE reference_id = 'hold_default'"
    ).fetchone()[0]
    assert seconds == DEFAULT_HOLD_SECONDS


async def test_a_hold_replays_and_its_key_is_its_own(client, conn):
    body = hold_body(reference_id="hold_replay", amount=500)
    first = await (await post(client, "/wallets/hold", body)).json()
    before = state(conn)
    r = await post(client, "/wallets/hold", dict(body, expires_in=30))  # expires_in is not compared
    assert r.status == 200 and r.headers[REPLAYED] == "true"
    assert await r.json() == first
    assert state(conn) == before
    for change in ({"amount": 501}, {"asset_code": "DIAMONDS"}, {"user_id": "user_alice"}, {"item_id": "x"}):
        error = await refused(
            client, conn, 409, "IDEMPOTENCY_CONFLICT", "POST", "/wallets/hold", json=dict(body, **change)
        )
        assert error["details"] == {"reference_id": "hold_replay", "hold_reference_id": "hold_replay"}


async def test_holds_and_postings_share_one_key_space(client, conn):
    posted = await topup(client, "user_bob", "GOLD_COINS", 5, "shared_key_topup")
    error = await refused(
        client,
        conn,
        409,
        "IDEMPOTENCY_CONFLICT",
        "POST",
        "/wallets/hold",
        json=hold_body(reference_id="shared_key_topup"),
    )
    assert error["details"] == {"reference_id": "shared_key_topup", "transaction_id": posted["transaction_id"]}

    await make_hold(client, reference_id="shared_key_hold")
    hold_conflict = {"reference_id": "shared_key_hold", "hold_reference_id": "shared_key_hold"}
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("/wallets/topup", {"user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 1}),
        ("/wallets/bonus", {"user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 1, "bonus_type": "T"}),
        ("/wallets/spend", {"user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 1, "item_id": "i"}),
        ("/wallets/purchase", {"user_id": "user_bob", "item_id": "i", "price": price(("GOLD_COINS", 1))}),
        ("/wallets/reverse", {"original_reference_id": "shared_key_topup", "reason": "r"}),
    ]
    for path, body in bodies:
        error = await refused(
            client, conn, 409, "IDEMPOTENCY_CONFLICT", "POST", path, json=dict(body, reference_id="shared_key_hold")
        )
        assert error["details"] == hold_conflict, path


async def test_spends_purchases_and_holds_need_what_is_available(client, conn):
    await make_hold(client, reference_id="hold_big", amount=40000)
    error = await refused(
        client,
        conn,
        422,
        "INSUFFICIENT_FUNDS",
        "POST",
        "/wallets/spend",
        json={
            "user_id": "user_bob",
            "asset_code": "GOLD_COINS",
            "amount": 10001,
            "reference_id": ref(),
            "item_id": "i",
        },
    )
    assert error["details"] == {"asset_code": "GOLD_COINS", "required": 10001, "available": 10000, "held": 40000}
    error = await refused(
        client, conn, 422, "INSUFFICIENT_FUNDS", "POST", "/wallets/hold", json=hold_body(amount=10001)
    )
    assert error["details"] == {"asset_code": "GOLD_COINS", "required": 10001, "available": 10000, "held": 40000}
    error = await refused(
        client,
        conn,
        422,
        "INSUFFICIENT_FUNDS",
        "POST",
        "/wallets/purchase",
        json=purchase_body(user_id="user_bob", price=price(("GOLD_COINS", 10001))),
    )
    assert error["details"]["available"] == 10000
    assert (await spend(client, "user_bob", "GOLD_COINS", 10000)).status == 201
    gold = (await balances(client, "user_bob"))["GOLD_COINS"]
    assert (gold["balance"], gold["held"], gold["available"]) == (40000, 40000, 0)


async def test_a_whole_capture_posts_under_the_holds_reference_and_replays(client, conn):
    await make_hold(client, reference_id="hold_cap", amount=1200, item_id="sword", metadata={"cart": 7})
    r = await post(client, "/holds/hold_cap/capture")  # no body at all: the whole hold
    assert r.status == 201, await r.text()
    assert REPLAYED not in r.headers
    answer = await r.json()
    assert set(answer) == {
        "transaction_id",
        "user_id",
        "asset_code",
        "amount",
        "balance",
        "transaction_type",
        "hold_reference_id",
        "timestamp",
    }
    assert {k: answer[k] for k in ("user_id", "asset_code", "amount", "balance", "transaction_type")} == {
        "user_id": "user_bob",
        "asset_code": "GOLD_COINS",
        "amount": 1200,
        "balance": 48800,
        "transaction_type": "CAPTURE",
    }
    assert answer["hold_reference_id"] == "hold_cap" and ISO_Z.match(answer["timestamp"])
    gold = (await balances(client, "user_bob"))["GOLD_COINS"]
    assert (gold["balance"], gold["held"], gold["available"]) == (48800, 0, 48800)
    status = await (await get(client, "/holds/hold_cap")).json()
    assert (status["status"], status["captured_amount"]) == ("CAPTURED", 1200)
    assert ISO_Z.match(status["closed_at"])
    tx = await (await get(client, "/transactions/hold_cap")).json()
    assert (tx["transaction_id"], tx["type"], tx["amount"], tx["item_id"], tx["metadata"]) == (
        answer["transaction_id"],
        "CAPTURE",
        1200,
        "sword",
        {"cart": 7},
    )

    before = state(conn)
    for body in (None, {}, {"amount": 1200}):
        r = await post(client, "/holds/hold_cap/capture", body)
        assert r.status == 200 and r.headers[REPLAYED] == "true", body
        assert await r.json() == answer
    assert state(conn) == before
    error = await refused(
        client, conn, 409, "HOLD_NOT_ACTIVE", "POST", "/holds/hold_cap/capture", json={"amount": 1000}
    )
    assert error["details"] == {"reference_id": "hold_cap", "status": "CAPTURED", "captured_amount": 1200}
    error = await refused(client, conn, 409, "HOLD_NOT_ACTIVE", "POST", "/holds/hold_cap/void")
    assert error["details"] == {"reference_id": "hold_cap", "status": "CAPTURED", "captured_amount": 1200}
    assert violations(conn) == []


async def test_a_partial_capture_releases_the_rest(client, conn):
    await make_hold(client, reference_id="hold_part", amount=100)
    r = await post(client, "/holds/hold_part/capture", {"amount": 30})
    assert r.status == 201
    assert ((await r.json())["amount"], (await r.json())["balance"]) == (30, 49970)
    gold = (await balances(client, "user_bob"))["GOLD_COINS"]
    assert (gold["balance"], gold["held"], gold["available"]) == (49970, 0, 49970)
    r = await post(client, "/holds/hold_part/capture", {"amount": 30})
    assert r.status == 200 and r.headers[REPLAYED] == "true"
    # a whole capture is another request than the partial one made
    error = await refused(client, conn, 409, "HOLD_NOT_ACTIVE", "POST", "/holds/hold_part/capture")
    assert error["details"]["captured_amount"] == 30


async def test_a_capture_above_the_hold_is_refused(client, conn):
    await make_hold(client, reference_id="hold_small", amount=100)
    error = await refused(
        client, conn, 422, "CAPTURE_EXCEEDS_HOLD", "POST", "/holds/hold_small/capture", json={"amount": 101}
    )
    assert error["details"] == {"reference_id": "hold_small", "amount": 101, "held": 100}
    assert (await post(client, "/holds/hold_small/capture", {"amount": 100})).status == 201


async def test_a_void_releases_the_hold_and_replays(client, conn):
    await make_hold(client, reference_id="hold_void", amount=700)
    before = snapshot(conn)
    r = await post(client, "/holds/hold_void/void")
    assert r.status == 200 and REPLAYED not in r.headers
    assert await r.json() == {"reference_id": "hold_void", "status": "VOIDED", "available": 50000}
    assert snapshot(conn) == before
    gold = (await balances(client, "user_bob"))["GOLD_COINS"]
    assert (gold["held"], gold["available"]) == (0, 50000)
    r = await post(client, "/holds/hold_void/void", {})
    assert r.status == 200 and r.headers[REPLAYED] == "true"
    assert await r.json() == {"reference_id": "hold_void", "status": "VOIDED", "available": 50000}
    status = await (await get(client, "/holds/hold_void")).json()
    assert status["status"] == "VOIDED" and status["captured_amount"] is None and status["closed_at"]
    error = await refused(client, conn, 409, "HOLD_NOT_ACTIVE", "POST", "/holds/hold_void/capture")
    assert error["details"] == {"reference_id": "hold_void", "status": "VOIDED", "captured_amount": None}


async def test_a_hold_past_its_expiry_stops_counting_and_cannot_be_captured(client, conn):
    await make_hold(client, user_id="user_charlie", reference_id="hold_exp", amount=25000, expires_in=1)
    error = await refused(
        client,
        conn,
        422,
        "INSUFFICIENT_FUNDS",
        "POST",
        "/wallets/spend",
        json={
            "user_id": "user_charlie",
            "asset_code": "GOLD_COINS",
            "amount": 1,
            "reference_id": ref(),
            "item_id": "i",
        },
    )
    assert (error["details"]["available"], error["details"]["held"]) == (0, 25000)
    await asyncio.sleep(EXPIRY_WAIT)
    # no job ran: the hold stopped counting by itself
    gold = (await balances(client, "user_charlie"))["GOLD_COINS"]
    assert (gold["balance"], gold["held"], gold["available"]) == (25000, 0, 25000)
    assert (await (await get(client, "/holds/hold_exp")).json())["status"] == "EXPIRED"
    error = await refused(client, conn, 409, "HOLD_EXPIRED", "POST", "/holds/hold_exp/capture")
    assert set(error["details"]) == {"reference_id", "expires_at"} and error["details"]["reference_id"] == "hold_exp"
    assert (await spend(client, "user_charlie", "GOLD_COINS", 1)).status == 201


async def test_a_void_of_an_expired_hold_says_expired(client, conn):
    await make_hold(client, reference_id="hold_exp_void", amount=10, expires_in=1)
    await asyncio.sleep(EXPIRY_WAIT)
    for _ in range(2):
        r = await post(client, "/holds/hold_exp_void/void")
        assert r.status == 200 and REPLAYED not in r.headers
        assert await r.json() == {"reference_id": "hold_exp_void", "status": "EXPIRED", "available": 50000}
    assert (await (await get(client, "/holds/hold_exp_void")).json())["status"] == "EXPIRED"


async def test_an_unknown_hold_is_hold_not_found(client, conn):
    for method, path in [
        ("GET", "/holds/no_such_hold"),
        ("POST", "/holds/no_such_hold/capture"),
        ("POST", "/holds/no_such_hold/void"),
    ]:
        error = await refused(client, conn, 404, "HOLD_NOT_FOUND", method, path)
        assert error["details"] == {"reference_id": "no_such_hold"}
    # a posting's reference id is no hold
    error = await refused(client, conn, 404, "HOLD_NOT_FOUND", "GET", "/holds/init_bob_gold_001")
    assert error["details"] == {"reference_id": "init_bob_gold_001"}


async def test_a_hold_of_an_unknown_asset_or_player_is_404(client, conn):
    await refused(client, conn, 404, "ASSET_NOT_FOUND", "POST", "/wallets/hold", json=hold_body(asset_code="NOPE"))
    await refused(client, conn, 404, "WALLET_NOT_FOUND", "POST", "/wallets/hold", json=hold_body(user_id="nobody"))
    error = await refused(
        client,
        conn,
        422,
        "INSUFFICIENT_FUNDS",
        "POST",
        "/wallets/hold",
        json=hold_body(asset_code="DIAMONDS", amount=1),
    )
    assert error["details"] == {"asset_code": "DIAMONDS", "required": 1, "available": 0, "held": 0}


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"expires_in": 0}, ["expires_in"]),
        ({"expires_in": MAX_HOLD_SECONDS + 1}, ["expires_in"]),
        ({"expires_in": 1.5}, ["expires_in"]),
        ({"expires_in": 60.0}, ["expires_in"]),
        ({"expires_in": "60"}, ["expires_in"]),
        ({"expires_in": True}, ["expires_in"]),
        ({"amount": None}, ["amount"]),
        ({"amount": 0}, ["amount"]),
        ({"asset_code": None}, ["asset_code"]),
        ({"user_id": None}, ["user_id"]),
        ({"item_id": ""}, ["item_id"]),
        ({"item_id": 3}, ["item_id"]),
        ({"metadata": "x"}, ["metadata"]),
        ({"reference_id": None}, ["reference_id"]),
        ({"expires_at": "2030-01-01T00:00:00Z"}, ["expires_at"]),
    ],
)
async def test_a_hold_of_the_wrong_shape_is_a_validation_error(client, conn, change, fields):
    body = {k: v for k, v in hold_body(**change).items() if v is not None}
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "POST", "/wallets/hold", json=body)
    assert [e["field"] for e in error["details"]["errors"]] == fields


async def test_a_hold_may_last_the_longest_expiry(client, conn):
    held = await make_hold(client, reference_id="hold_long", expires_in=MAX_HOLD_SECONDS)
    assert held["status"] == "HELD"
    seconds = conn.execute(
        "SELECT extract(epoch FROM expires_at - created_at) FROM holds WHERE reference_id = 'hold_long'"
    ).fetchone()[0]
    assert seconds == MAX_HOLD_SECONDS


async def test_a_hold_key_in_the_header_only_or_disagreeing(client, conn):
    body = hold_body()
    del body["reference_id"]
    r = await post(client, "/wallets/hold", body, headers={"Idempotency-Key": "hold_by_header"})
    assert r.status == 201 and (await r.json())["reference_id"] == "hold_by_header"
    error = await refused(
        client,
        conn,
        400,
        "VALIDATION_ERROR",
        "POST",
        "/wallets/hold",
        json=dict(body, reference_id="a"),
        headers={"Idempotency-Key": "b"},
    )
    assert [e["field"] for e in error["details"]["errors"]] == ["reference_id"]


# ------------------------------------------------- the optional body of capture and void


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # no body, no Content-Type
        {"data": b"", "headers": {"Content-Type": "application/json"}},
        {"data": b"{}", "headers": {"Content-Type": "application/json"}},
        {"data": b"", "headers": {"Content-Type": "text/plain"}},  # no content: nothing to misread
        {"data": b'{"amount": null}', "headers": {"Content-Type": "application/json; charset=utf-8"}},
    ],
    ids=["none", "empty json", "empty object", "empty text", "null amount"],
)
async def test_a_capture_without_an_amount_takes_the_whole_hold(client, kwargs):
    await make_hold(client, reference_id="hold_whole", amount=80)
    r = await client.post(f"{API}/holds/hold_whole/capture", **kwargs)
    assert r.status == 201, await r.text()
    assert (await r.json())["amount"] == 80


@pytest.mark.parametrize(
    ("status", "code", "kwargs"),
    [
        (415, "UNSUPPORTED_MEDIA_TYPE", {"data": b'{"amount": 1}', "headers": {"Content-Type": "text/plain"}}),
        (415, "UNSUPPORTED_MEDIA_TYPE", {"data": b'{"amount": 1}', "skip_auto_headers": ["Content-Type"]}),
        (400, "INVALID_JSON", {"data": b"[]", "headers": {"Content-Type": "application/json"}}),
        (400, "INVALID_JSON", {"data": b"{", "headers": {"Content-Type": "application/json"}}),
        (400, "VALIDATION_ERROR", {"json": {"amount": 0}}),
        (400, "VALIDATION_ERROR", {"json": {"amount": 1.5}}),
        (400, "VALIDATION_ERROR", {"json": {"amount": "1"}}),
        (400, "VALIDATION_ERROR", {"json": {"amount": 1, "reason": "x"}}),
    ],
)
async def test_a_capture_body_follows_the_json_rules(client, conn, status, code, kwargs):
    await make_hold(client, reference_id="hold_body", amount=80)
    await refused(client, conn, status, code, "POST", "/holds/hold_body/capture", **kwargs)


@pytest.mark.parametrize(
    ("status", "code", "kwargs"),
    [
        (415, "UNSUPPORTED_MEDIA_TYPE", {"data": b"{}", "headers": {"Content-Type": "text/plain"}}),
        (400, "VALIDATION_ERROR", {"json": {"amount": 1}}),
        (400, "INVALID_JSON", {"data": b"null", "headers": {"Content-Type": "application/json"}}),
    ],
)
async def test_a_void_takes_no_fields(client, conn, status, code, kwargs):
    await make_hold(client, reference_id="hold_void_body", amount=80)
    await refused(client, conn, status, code, "POST", "/holds/hold_void_body/void", **kwargs)


async def test_a_bad_hold_reference_in_the_path_is_a_validation_error(client, conn):
    for method, path in [
        ("GET", "/holds/a%E2%80%AEb"),
        ("POST", "/holds/a%E2%80%AEb/capture"),
        ("POST", f"/holds/{'h' * 129}/void"),
    ]:
        error = await refused(client, conn, 400, "VALIDATION_ERROR", method, path)
        assert [e["field"] for e in error["details"]["errors"]] == ["reference_id"]


# ---------------------------------------------------------------- balances at an instant


async def test_the_balance_at_an_instant_is_the_balance_as_it_stood_then(client, conn):
    first = await topup(client, "user_charlie", "GOLD_COINS", 1000, "at_first")
    between = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    await topup(client, "user_charlie", "GOLD_COINS", 2000, "at_second")
    await make_hold(client, user_id="user_charlie", amount=500)
    assert (await balances(client, "user_charlie"))["GOLD_COINS"]["balance"] == 28000

    r = await get(client, "/wallets/user_charlie/balance", params={"at": between.isoformat()})
    assert r.status == 200, await r.text()
    body = await r.json()
    assert set(body) == {"user_id", "as_of", "balances"}
    assert body["as_of"] == between.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert body["balances"] == [
        {"asset_code": "GOLD_COINS", "asset_name": "Gold Coins", "balance": 26000, "last_updated": first["timestamp"]}
    ]
    # the same instant in another offset (a + sent as %2B) and in Z
    shifted = between.astimezone(timezone(timedelta(hours=5)))
    r = await get(client, f"/wallets/user_charlie/balance?at={quote(shifted.isoformat(), safe='')}")
    assert (await r.json())["balances"][0]["balance"] == 26000


async def test_the_balance_before_any_entry_leaves_the_wallet_out(client, conn):
    r = await get(client, "/wallets/user_alice/balance", params={"at": "2001-02-03T04:05:06Z"})
    assert r.status == 200
    assert await r.json() == {"user_id": "user_alice", "as_of": "2001-02-03T04:05:06.000Z", "balances": []}
    r = await get(
        client, "/wallets/user_alice/balance", params={"at": "2001-02-03T04:05:06.5+01:00", "asset_code": "DIAMONDS"}
    )
    assert await r.json() == {
        "user_id": "user_alice",
        "as_of": "2001-02-03T03:05:06.500Z",
        "balances": [{"asset_code": "DIAMONDS", "asset_name": "Diamonds", "balance": 0, "last_updated": None}],
    }


async def test_the_balance_now_shows_held_and_available(client):
    await make_hold(client, amount=123)
    r = await get(client, "/wallets/user_bob/balance")
    body = await r.json()
    assert set(body) == {"user_id", "balances"}
    assert body["balances"] == [
        {
            "asset_code": "GOLD_COINS",
            "asset_name": "Gold Coins",
            "balance": 50000,
            "held": 123,
            "available": 49877,
            "last_updated": body["balances"][0]["last_updated"],
        }
    ]


async def test_the_balance_at_a_far_instant_is_answered(client):
    for at, as_of in [
        ("0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00.000+23:59"),
        ("9999-12-31T23:59:59.999999-23:59", "9999-12-31T23:59:59.999999-23:59"),
        ("2026-02-08t09:24:50.1234567z", "2026-02-08T09:24:50.123456Z"),
    ]:
        r = await get(client, "/wallets/user_bob/balance", params={"at": at})
        assert r.status == 200, (at, await r.text())
        assert (await r.json())["as_of"] == as_of


@pytest.mark.parametrize(
    "at",
    [
        "yesterday",
        "",
        "2026-02-08T09:24:50",  # no offset
        "2026-02-08",
        "2026-02-08T09:24Z",
        "2026-02-08 09:24:50 01:00",  # a + sent unencoded arrives as a space
        "2026-02-30T00:00:00Z",
        "2026-02-08T24:00:00Z",
        "2016-12-31T23:59:60Z",
        "2026-02-08T09:24:50+24:00",
        "2026-02-08T09:24:50+01:60",
        "0000-01-01T00:00:00Z",
        "２０２６-02-08T09:24:50Z",
        "1770542690",
    ],
)
async def test_a_bad_instant_is_a_validation_error_naming_at(client, conn, at):
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "GET", f"/wallets/user_bob/balance?at={quote(at)}")
    assert [e["field"] for e in error["details"]["errors"]] == ["at"]
    if "01:00" in at:
        assert "%2B" in error["details"]["errors"][0]["message"]


async def test_at_given_twice_is_a_validation_error(client, conn):
    path = "/wallets/user_bob/balance?at=2026-01-01T00:00:00Z&at=2026-01-02T00:00:00Z"
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "GET", path)
    assert [e["field"] for e in error["details"]["errors"]] == ["at"]


# ---------------------------------------------------------------- the transaction lookup


async def test_a_single_asset_transaction_shows_its_one_leg(client):
    r = await get(client, "/transactions/init_bob_gold_001")
    tx = await r.json()
    assert tx["legs"] == [{"asset_code": "GOLD_COINS", "amount": 50000}]
    assert (tx["item_id"], tx["original_reference_id"], tx["reason"]) == (None, None, None)
    assert {e["asset_code"] for e in tx["ledger_entries"]} == {"GOLD_COINS"}
    assert (await spend(client, "user_bob", "GOLD_COINS", 5, "spend_item")).status == 201
    tx = await (await get(client, "/transactions/spend_item")).json()
    assert (tx["item_id"], tx["asset_code"], tx["amount"]) == ("i", "GOLD_COINS", 5)


# ---------------------------------------------------------------- scopes


@pytest.fixture
async def anon(aiohttp_client, app_url):
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=4))


async def test_each_new_route_needs_its_scope(anon, client, db_url, conn):
    keys = {scope: create_key(db_url, [scope], f"key-{scope}") for scope in ("read", "spend", "reverse", "topup")}
    await make_hold(client, reference_id="hold_scoped", amount=10)
    assert (await spend(client, "user_bob", "GOLD_COINS", 10, "spend_scoped")).status == 201
    requests = [
        ("POST", "/wallets/purchase", {"json": purchase_body()}, "spend"),
        ("POST", "/wallets/hold", {"json": hold_body()}, "spend"),
        ("POST", "/holds/hold_scoped/capture", {"json": {"amount": 1}}, "spend"),
        ("POST", "/holds/hold_scoped/void", {}, "spend"),
        (
            "POST",
            "/wallets/reverse",
            {"json": {"reference_id": ref(), "original_reference_id": "spend_scoped", "reason": "r", "amount": 1}},
            "reverse",
        ),
        ("GET", "/holds/hold_scoped", {}, "read"),
        ("GET", "/wallets/user_bob/balance?at=2026-01-01T00:00:00Z", {}, "read"),
    ]
    for method, path, kwargs, needed in requests:
        for scope, secret in keys.items():
            if scope == needed:
                continue
            before = state(conn)
            r = await anon.request(method, f"{API}{path}", headers=bearer(secret), **kwargs)
            assert r.status == 403, (path, scope)
            error = await error_of(r)
            assert error["code"] == "FORBIDDEN" and error["details"] == {"required_scope": needed}, (path, scope)
            assert state(conn) == before
    # the scope itself suffices (the hold is voided last: capture first, with the spend key)
    ok = {"POST": 201, "GET": 200}
    for method, path, kwargs, needed in requests:
        r = await anon.request(method, f"{API}{path}", headers=bearer(keys[needed]), **kwargs)
        expected = 409 if path.endswith("/void") else ok[method]  # captured just before: not active any more
        assert r.status == expected, (path, await r.text())
    # the key's name is the actor of what it did
    row = conn.execute("SELECT actor, closed_by FROM holds WHERE reference_id = 'hold_scoped'").fetchone()
    assert row == ("test-admin", "key-spend")
    assert conn.execute("SELECT actor FROM transactions WHERE reference_id = 'hold_scoped'").fetchone() == (
        "key-spend",
    )


# ---------------------------------------------------------------- concurrent requests through the service


async def test_parallel_purchases_in_opposite_orders_sell_exactly_what_is_funded(client, conn):
    funded = 7
    await topup(client, "buyer_race", "GOLD_COINS", 100 * funded)
    await topup(client, "buyer_race", "DIAMONDS", 10 * funded)
    legs = price(("GOLD_COINS", 100), ("DIAMONDS", 10))
    bodies = [
        purchase_body(user_id="buyer_race", reference_id=f"race_buy_{i}", price=legs if i % 2 else legs[::-1])
        for i in range(20)
    ]
    responses = await asyncio.gather(*(post(client, "/wallets/purchase", body) for body in bodies))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * funded + [422] * (20 - funded)
    for r in responses:
        if r.status == 422:
            assert (await error_of(r))["code"] == "INSUFFICIENT_FUNDS"
    now = await balances(client, "buyer_race")
    assert (now["GOLD_COINS"]["balance"], now["DIAMONDS"]["balance"]) == (0, 0)
    assert violations(conn) == []


async def test_parallel_full_reversals_of_one_spend_refund_once(client, conn):
    assert (await spend(client, "user_bob", "GOLD_COINS", 900, "spend_race")).status == 201
    responses = await asyncio.gather(*(reverse(client, "spend_race") for _ in range(10)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [422] * 9
    for r in responses:
        if r.status == 422:
            assert (await error_of(r))["code"] == "REVERSAL_EXCEEDS_ORIGINAL"
    assert (await balances(client, "user_bob"))["GOLD_COINS"]["balance"] == 50000
    assert violations(conn) == []


async def test_parallel_holds_never_reserve_more_than_the_balance(client, conn):
    await topup(client, "holder_race", "GOLD_COINS", 100)
    bodies = [hold_body(user_id="holder_race", amount=30) for _ in range(10)]
    responses = await asyncio.gather(*(post(client, "/wallets/hold", body) for body in bodies))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * 3 + [422] * 7
    gold = (await balances(client, "holder_race"))["GOLD_COINS"]
    assert (gold["balance"], gold["held"], gold["available"]) == (100, 90, 10)
    assert violations(conn) == []


async def test_ids_with_braces_slashes_and_percents_work_in_paths(client):
    """Any id is one path segment: braces as they are, a / as %2F, a % as %25."""
    hold_ref, user = "h{1}/a b%", "p{x}/y"
    await make_hold(client, reference_id=hold_ref, amount=10)
    path = quote(hold_ref, safe="")
    r = await get(client, f"/holds/{path}")
    assert r.status == 200 and (await r.json())["reference_id"] == hold_ref
    r = await post(client, f"/holds/{path}/capture")
    assert r.status == 201 and (await r.json())["hold_reference_id"] == hold_ref
    r = await get(client, f"/transactions/{path}")
    assert r.status == 200 and (await r.json())["reference_id"] == hold_ref
    await topup(client, user, "GOLD_COINS", 5)
    r = await get(client, f"/wallets/{quote(user, safe='')}/balance")
    assert r.status == 200 and (await r.json())["user_id"] == user
    r = await get(client, f"/wallets/{quote(user, safe='')}/transactions", params={"asset_code": "GOLD_COINS"})
    assert r.status == 200 and len((await r.json())["transactions"]) == 1


@pytest.mark.single_server("locks a wallet row in its database (a proxy view locks none), counts its lock waits")
@pytest.mark.parametrize("operation", ["purchase", "reverse", "capture"])
async def test_requests_waiting_on_a_locked_wallet_hold_only_their_share_of_the_pool(client, db_url, conn, operation):
    """service/database.py's per-wallet gate: a purchase goes through the gate of each of its wallets, a
    reversal through its original's, a capture through its hold's; with the wallet locked elsewhere, at most
    WALLET_CONCURRENCY of them wait in the database at once, the others wait in the service."""
    assert (await spend(client, "user_alice", "DIAMONDS", 10, "spend_gate")).status == 201
    await make_hold(client, user_id="user_alice", asset_code="DIAMONDS", amount=10, reference_id="hold_gate")
    requests = {
        "purchase": lambda i: post(client, "/wallets/purchase", purchase_body(reference_id=f"gate_{i}")),
        "reverse": lambda i: post(client, "/wallets/reverse", reverse_body("spend_gate", amount=1)),
        "capture": lambda i: post(client, "/holds/hold_gate/capture", {"amount": 10}),
    }
    holder = await psycopg.AsyncConnection.connect(db_url)
    await holder.execute("SELECT 1 FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'DIAMONDS' FOR UPDATE")
    try:
        pending = [asyncio.ensure_future(requests[operation](i)) for i in range(6)]
        await asyncio.sleep(0.5)
        waiting = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wallet-service' "
            "AND wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()[0]
        assert waiting == WALLET_CONCURRENCY
    finally:
        await holder.rollback()
        await holder.close()
    statuses = sorted([r.status for r in await asyncio.gather(*pending)])
    # each in turn once the wallet is free: all posted (a capture once, then its replays)
    assert statuses == ([200] * 5 + [201] if operation == "capture" else [201] * 6)
