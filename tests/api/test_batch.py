"""POST /api/v1/wallets/batch: each operation's result is what its single route answers for it on the same
database state, one refusal never affects the others, the whole-request refusals write nothing, the body limit
is this route's own (1 MiB; every other route keeps 64 KiB), each operation needs its own scope, and two
concurrent batches over the same players deadlock nowhere and keep the books consistent.

The comparisons run the batch against this test's database and the single routes against a twin (fixture
twin_db_url, tests/api/conftest.py): a second copy of the same template, with the same keys. Transaction ids
(random uuids) and timestamps differ between the two; each is replaced by what it stands for in its own
database (the transaction's reference id; the transaction's own created_at), so the rest compares exactly."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from service.api_errors import from_db_error, from_db_fields
from service.app import API, create_app
from service.handlers import iso
from service.limits import (
    MAX_AMOUNT,
    MAX_BATCH_BODY_BYTES,
    MAX_BATCH_OPERATIONS,
    MAX_BODY_BYTES,
    MAX_METADATA_DEPTH,
)
from tests.access import app_login_url, bearer, create_key
from tests.api.helpers import error_of, snapshot, violations

BATCH = f"{API}/wallets/batch"
POSTING_SCOPES = ["topup", "bonus", "spend"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture
async def client(aiohttp_client, app_url, auth_headers):
    """This test's database, as the admin key."""
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=4), headers=auth_headers)


@pytest.fixture
async def anon(aiohttp_client, app_url):
    """This test's database, no key unless a request sends one."""
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=4))


@pytest.fixture
async def twin(aiohttp_client, twin_db_url):
    """The twin database's app, no key unless a request sends one."""
    return await aiohttp_client(create_app(app_login_url(twin_db_url), pool_min_size=1, pool_max_size=4))


def op(operation: str, reference_id: str, user_id: str = "user_alice", amount: int = 100, **fields: Any) -> dict:
    """One operation of a batch (the fields of its single route, and `operation`)."""
    own = {"topup": {}, "bonus": {"bonus_type": "DAILY_LOGIN"}, "spend": {"item_id": "sword"}}.get(operation, {})
    item = {"operation": operation, "user_id": user_id, "asset_code": "GOLD_COINS", "amount": amount}
    item.update(reference_id=reference_id, **own)
    item.update(fields)
    return item


async def post_batch(client, operations: list, headers: dict[str, str] | None = None) -> list[dict]:
    r = await client.post(BATCH, json={"operations": operations}, headers=headers or {})
    assert r.status == 200, await r.text()
    assert "Idempotent-Replayed" not in r.headers
    body = await r.json()
    assert set(body) == {"results"} and len(body["results"]) == len(operations)
    for result in body["results"]:
        assert set(result) == {"status", "body"}
    return body["results"]


async def post_single(client, item: dict, headers: dict[str, str]) -> dict:
    """What the item's single route answers (its replay header checked against its status)."""
    fields = {k: v for k, v in item.items() if k != "operation"}
    r = await client.post(f"{API}/wallets/{item['operation']}", json=fields, headers=headers)
    assert (r.headers.get("Idempotent-Replayed") == "true") == (r.status == 200), r.status
    return {"status": r.status, "body": await r.json()}


def transactions(db_url: str) -> dict[str, tuple[str, str | None]]:
    """transaction id -> (its reference id, its created_at as the API writes it)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT id::text, reference_id, created_at FROM transactions").fetchall()
    return {tid: (ref, iso(created)) for tid, ref, created in rows}


def normalized(result: dict, txns: dict[str, tuple[str, str | None]]) -> dict:
    """The result with every transaction id in it (a posting's, an error's details and message) replaced by
    its transaction's reference id, and a posting's timestamp by a mark that it is its transaction's own
    created_at (both looked up in the result's own database)."""
    body = result["body"]
    if "transaction_id" in body:
        assert body["timestamp"] == txns[body["transaction_id"]][1], body
    text = UUID.sub(lambda m: f"txn:{txns[m.group()][0]}", json.dumps(result))
    out = json.loads(text)
    if "timestamp" in out["body"]:
        out["body"]["timestamp"] = "created_at"
    return out


def books(db_url: str) -> tuple:
    """Every wallet's balance and every transaction (by reference id), without ids or times."""
    with psycopg.connect(db_url) as conn:
        wallets = conn.execute(
            "SELECT kind::text, coalesce(user_id, name) AS owner, asset_code, balance FROM wallets "
            "ORDER BY owner, asset_code, kind"
        ).fetchall()
        txns = conn.execute(
            "SELECT reference_id, type::text, user_id, asset_code, amount, payment_method, bonus_type, item_id, "
            "metadata, actor FROM transactions ORDER BY reference_id"
        ).fetchall()
    return wallets, txns


def every_transaction_has_its_event(conn: psycopg.Connection) -> None:
    missing = conn.execute(
        "SELECT t.reference_id FROM transactions t WHERE NOT EXISTS "
        "(SELECT 1 FROM event_inbox i WHERE i.transaction_id = t.id) AND NOT EXISTS "
        "(SELECT 1 FROM events e WHERE e.transaction_id = t.id)"
    ).fetchall()
    assert missing == []


async def setup_both(clients: list, headers: list[dict[str, str]]) -> None:
    """The same state before the batch in both databases: an earlier top-up (for a replay and a conflict)
    and a hold (whose key a posting may not take)."""
    for client, h in zip(clients, headers, strict=True):
        r = await client.post(
            f"{API}/wallets/topup",
            json={"user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 700, "reference_id": "earlier_1"},
            headers=h,
        )
        assert r.status == 201
        r = await client.post(
            f"{API}/wallets/hold",
            json={"user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "a_hold_1"},
            headers=h,
        )
        assert r.status == 201


def nested(levels: int) -> dict:
    """A metadata object nesting `levels` objects (itself included)."""
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"inner": value}
    return value


TOO_DEEP = nested(MAX_METADATA_DEPTH + 1)

# A batch of every kind of answer, in an order where later operations depend on earlier ones
MIXED: list[dict] = [
    op("topup", "m_topup_1", amount=1000, payment_method="stripe", metadata={"order": "ORD-1", "n": [1, {"x": None}]}),
    op("bonus", "m_bonus_1", user_id="user_bob", amount=50),
    op("spend", "m_spend_1", amount=300),
    op("topup", "earlier_1", user_id="user_bob", amount=700),  # a replay of the earlier top-up
    op("topup", "earlier_1", user_id="user_bob", amount=701),  # the earlier key, another request
    op("spend", "m_poor_1", user_id="user_charlie", amount=25_001),  # insufficient funds
    op("topup", "m_asset_1", asset_code="NO_SUCH_ASSET"),  # unknown asset
    op("spend", "m_nobody_1", user_id="nobody_at_all"),  # no wallet
    op("topup", "m_bad_1", amount=0, colour="red"),  # invalid: two problems
    {k: v for k, v in op("bonus", "m_bad_2").items() if k != "bonus_type"},  # invalid: its field missing
    {k: v for k, v in op("spend", "x").items() if k != "reference_id"},  # no key (the batch has no header)
    op("spend", "m_deep_1", metadata=TOO_DEEP),  # metadata nested past the limit
    op("topup", "m_limit_1", amount=MAX_AMOUNT),  # the balance would pass 2^53-1
    op("spend", "a_hold_1", user_id="user_bob", amount=5),  # a hold's key
    op("topup", "m_new_1", user_id="m_new_player", amount=100),  # opens a wallet
    op("spend", "m_new_2", user_id="m_new_player", amount=60),  # uses what the previous one credited
    op("spend", "m_new_3", user_id="m_new_player", amount=60),  # 40 left: insufficient
    op("topup", "m_dup_1", amount=10),
    op("topup", "m_dup_1", amount=10),  # the same key again in this batch, same request: a replay
    op("topup", "m_dup_1", amount=11),  # and with another request: a conflict
    op("spend", "m_dup_2", amount=MAX_AMOUNT),  # refused (422) ...
    op("spend", "m_dup_2", amount=1),  # ... so its key is free for this one
]  # fmt: skip


# ---------------------------------------------------------------- each result is the single route's answer


async def test_each_result_is_what_the_single_route_answers(anon, twin, db_url, twin_db_url, conn):
    keys = [create_key(url, POSTING_SCOPES, "game-backend") for url in (db_url, twin_db_url)]
    await setup_both([anon, twin], [bearer(k) for k in keys])
    before = snapshot(conn)

    results = await post_batch(anon, MIXED, bearer(keys[0]))
    singles = [await post_single(twin, item, bearer(keys[1])) for item in MIXED]

    batch_txns, single_txns = transactions(db_url), transactions(twin_db_url)
    got = [normalized(r, batch_txns) for r in results]
    expected = [normalized(r, single_txns) for r in singles]
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, (i, MIXED[i])
    # every kind of answer was there
    assert [r["status"] for r in got] == [
        201, 201, 201, 200, 409, 422, 404, 404, 400, 400, 400, 400, 422, 409, 201, 201, 422, 201, 200, 409, 422, 201
    ]  # fmt: skip
    codes = [r["body"].get("error", {}).get("code") for r in got]
    assert {"IDEMPOTENCY_CONFLICT", "INSUFFICIENT_FUNDS", "ASSET_NOT_FOUND", "WALLET_NOT_FOUND"} <= set(codes)
    assert {"VALIDATION_ERROR", "BALANCE_LIMIT_EXCEEDED"} <= set(codes)
    assert got[13]["body"]["error"]["details"]["hold_reference_id"] == "a_hold_1"
    # the details are the documented ones only (the functions' DETAIL says more: user_id)
    assert got[5]["body"]["error"]["details"] == {
        "asset_code": "GOLD_COINS",
        "required": 25_001,
        "available": 25_000,
        "held": 0,
    }
    assert got[8]["body"]["error"]["details"]["errors"] == [
        {"field": "colour", "message": "is not a known field"},
        {"field": "amount", "message": f"must be an integer from 1 to {MAX_AMOUNT}"},
    ]
    # the same books in both databases; the refusals wrote nothing
    assert books(db_url) == books(twin_db_url)
    posted = sum(1 for r in got if r["status"] == 201)
    assert snapshot(conn)[0] == before[0] + posted
    assert violations(conn) == []
    every_transaction_has_its_event(conn)


async def test_an_operation_without_its_scope_is_the_single_routes_403(anon, twin, db_url, twin_db_url, conn):
    keys = [create_key(url, ["spend"], "spender") for url in (db_url, twin_db_url)]
    items = [
        op("topup", "s_topup_1"),
        op("bonus", "s_bonus_1"),
        op("spend", "s_spend_1"),
        op("topup", "s_bad", amount=0),
    ]
    before = snapshot(conn)
    results = await post_batch(anon, items, bearer(keys[0]))
    singles = [await post_single(twin, item, bearer(keys[1])) for item in items]
    got, expected = (
        [normalized(r, transactions(db_url)) for r in results],
        [normalized(r, transactions(twin_db_url)) for r in singles],
    )
    assert got == expected
    assert [r["status"] for r in got] == [403, 403, 201, 403]  # the scope is checked before the shape
    assert got[0]["body"]["error"]["details"] == {"required_scope": "topup"}
    assert got[1]["body"]["error"]["details"] == {"required_scope": "bonus"}
    assert snapshot(conn)[0] == before[0] + 1


async def test_an_unknown_or_missing_operation_is_a_400_on_operation(client, conn):
    before = snapshot(conn)
    no_operation = {k: v for k, v in op("topup", "u_2").items() if k != "operation"}
    items = [
        op("transfer", "u_1"),
        no_operation,
        "topup",
        {**op("topup", "u_3"), "operation": ["topup"]},
        op("topup", "u_ok"),
        None,
    ]
    results = await post_batch(client, items)
    assert [r["status"] for r in results] == [400, 400, 400, 400, 201, 400]
    refused = results[:4] + results[5:]
    assert [[e["field"] for e in r["body"]["error"]["details"]["errors"]] for r in refused] == [["operation"]] * 5
    assert {r["body"]["error"]["code"] for r in refused} == {"VALIDATION_ERROR"}
    messages = [r["body"]["error"]["details"]["errors"][0]["message"] for r in refused]
    assert messages[0] == messages[3] == "must be one of topup, bonus, spend"
    assert messages[1] == "is required"
    assert messages[2] == messages[4] == "each operation must be a JSON object with an operation: topup, bonus or spend"
    assert snapshot(conn)[0] == before[0] + 1


async def test_a_refusal_affects_no_other_operation(client, conn):
    """The same operations with and without refused ones between them: the others post the same."""
    good = [op("topup", f"r_{i}", user_id=f"r_player_{i % 3}", amount=10 + i) for i in range(9)]
    bad = [op("spend", f"r_bad_{i}", user_id=f"r_player_{i % 3}", amount=MAX_AMOUNT) for i in range(9)]
    mixed = [item for pair in zip(good, bad, strict=True) for item in pair]
    results = await post_batch(client, mixed)
    assert [r["status"] for r in results] == [201, 422] * 9
    assert [r["body"]["amount"] for r in results[::2]] == [10 + i for i in range(9)]
    balances = {p: b for p, b in conn.execute("SELECT user_id, balance FROM wallets WHERE user_id LIKE 'r_player_%'")}
    assert balances == {f"r_player_{j}": sum(10 + i for i in range(9) if i % 3 == j) for j in range(3)}
    assert conn.execute("SELECT count(*) FROM transactions WHERE reference_id LIKE 'r_bad_%'").fetchone()[0] == 0


async def test_the_batch_records_its_key_as_actor_and_counts_postings(anon, db_url, conn):
    secret = create_key(db_url, POSTING_SCOPES, "batch-backend")
    labels = {"type": "TOPUP", "asset": "GOLD_COINS"}
    counted = REGISTRY.get_sample_value("wallet_postings_total", labels) or 0.0
    items = [op("topup", "a_1"), op("topup", "a_2"), op("topup", "a_1"), op("topup", "a_3", amount=0)]
    results = await post_batch(anon, items, bearer(secret))
    assert [r["status"] for r in results] == [201, 201, 200, 400]
    assert REGISTRY.get_sample_value("wallet_postings_total", labels) == counted + 2  # not the replay
    actors = conn.execute("SELECT actor FROM transactions WHERE reference_id IN ('a_1', 'a_2')").fetchall()
    assert actors == [("batch-backend",), ("batch-backend",)]


def test_from_db_error_and_from_db_fields_agree(conn):
    """The single routes' errors (raised) and the batch's (rows) go through one registry, alike."""
    conn.execute(
        "SELECT * FROM wallet_topup(p_user_id => 'user_bob', p_asset_code => 'GOLD_COINS', p_amount => 1, "
        "p_reference_id => 'agree_1')"
    )
    calls = [
        "wallet_topup('user_bob', 'GOLD_COINS', 2, 'agree_1')",  # WL004
        "wallet_spend('user_bob', 'GOLD_COINS', 9000000, 'agree_2', 'i')",  # WL001
        "wallet_spend('nobody', 'GOLD_COINS', 1, 'agree_3', 'i')",  # WL002
        "wallet_topup('user_bob', 'NOPE', 1, 'agree_4')",  # WL003
        "wallet_topup('user_bob', 'GOLD_COINS', 0, 'agree_5')",  # WL006
    ]
    states = set()
    for call in calls:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(f"SELECT * FROM {call}")
        exc = caught.value
        states.add(exc.sqlstate)
        detail = json.loads(exc.diag.message_detail or "{}")
        fields = from_db_fields(exc.sqlstate, exc.diag.message_primary, detail, exc.diag.column_name)
        raised = from_db_error(exc)
        assert (fields.status, fields.body(), fields.headers) == (raised.status, raised.body(), raised.headers)
        assert raised.status in (400, 404, 409, 422)
    assert states == {"WL001", "WL002", "WL003", "WL004", "WL006"}
    assert from_db_fields("XX999", "boom", None, None).status == 500
    assert from_db_fields("55P03", None, None, None).headers == {"Retry-After": "1"}


# ---------------------------------------------------------------- the whole request


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ([op("topup", "w_1")], "INVALID_JSON", None),
        ({}, "VALIDATION_ERROR", "operations"),
        ({"operations": {"operation": "topup"}}, "VALIDATION_ERROR", "operations"),
        ({"operations": []}, "VALIDATION_ERROR", "operations"),
        ({"operations": None}, "VALIDATION_ERROR", "operations"),
        ({"operations": [op("topup", "w_2")], "atomic": True}, "VALIDATION_ERROR", "atomic"),
    ],
    ids=["array", "no operations", "not an array", "empty", "null", "unknown field"],
)
async def test_a_malformed_request_is_refused_whole(client, conn, body, code, field):
    before = snapshot(conn)
    r = await client.post(BATCH, json=body)
    assert r.status == 400
    error = await error_of(r)
    assert error["code"] == code
    if field is not None:
        assert [e["field"] for e in error["details"]["errors"]] == [field]
    assert snapshot(conn) == before


async def test_more_than_the_limit_of_operations_is_refused_whole(client, conn):
    before = snapshot(conn)
    items = [op("topup", f"n_{i}", user_id=f"n_player_{i % 50}", amount=1) for i in range(MAX_BATCH_OPERATIONS + 1)]
    r = await client.post(BATCH, json={"operations": items})
    assert r.status == 400
    error = await error_of(r)
    assert error["details"]["errors"] == [
        {"field": "operations", "message": f"must be an array of 1 to {MAX_BATCH_OPERATIONS} operations"}
    ]
    assert snapshot(conn) == before
    results = await post_batch(client, items[:MAX_BATCH_OPERATIONS])  # the limit itself passes
    assert {r["status"] for r in results} == {201}
    assert snapshot(conn)[0] == before[0] + MAX_BATCH_OPERATIONS
    assert violations(conn) == []


async def test_an_idempotency_key_header_is_refused_whole(client, conn):
    before = snapshot(conn)
    r = await client.post(BATCH, json={"operations": [op("topup", "h_1")]}, headers={"Idempotency-Key": "h_1"})
    assert r.status == 400
    assert [e["field"] for e in (await error_of(r))["details"]["errors"]] == ["Idempotency-Key"]
    assert snapshot(conn) == before


async def test_the_body_must_be_declared_json(client, conn):
    before = snapshot(conn)
    r = await client.post(BATCH, data=json.dumps({"operations": [op("topup", "c_1")]}))
    assert r.status == 415 and (await error_of(r))["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert snapshot(conn) == before


def padded(body: dict, size: int) -> io.BytesIO:
    """body as JSON, padded with trailing whitespace (still the same JSON) to exactly size bytes."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return io.BytesIO(raw + b" " * (size - len(raw)))


async def test_the_body_limit_is_one_mib_for_this_route_only(client, conn):
    json_type = {"Content-Type": "application/json"}
    before = snapshot(conn)
    r = await client.post(
        BATCH, data=padded({"operations": [op("topup", "l_2")]}, MAX_BATCH_BODY_BYTES + 1), headers=json_type
    )
    assert r.status == 413
    error = await error_of(r)
    assert error["code"] == "PAYLOAD_TOO_LARGE" and error["message"] == "the request body is larger than 1 MiB"
    assert snapshot(conn) == before

    r = await client.post(
        BATCH, data=padded({"operations": [op("topup", "l_1")]}, MAX_BATCH_BODY_BYTES), headers=json_type
    )
    assert r.status == 200 and (await r.json())["results"][0]["status"] == 201

    # a real batch close to the limit: metadata makes up the size
    items = [op("topup", f"l_big_{i}", metadata={"note": "x" * 900}) for i in range(1000)]
    raw = json.dumps({"operations": items}).encode()
    assert MAX_BATCH_BODY_BYTES - 100_000 < len(raw) < MAX_BATCH_BODY_BYTES
    r = await client.post(BATCH, data=io.BytesIO(raw), headers=json_type)
    assert r.status == 200

    # every other route keeps its own limit
    topup = {"user_id": "user_alice", "asset_code": "GOLD_COINS", "amount": 1, "reference_id": "l_single"}
    for size in (MAX_BODY_BYTES + 1, 2 * MAX_BODY_BYTES):
        r = await client.post(f"{API}/wallets/topup", data=padded(topup, size), headers=json_type)
        assert r.status == 413, size
        assert (await error_of(r))["message"] == "the request body is larger than 64 KiB"
    r = await client.post(f"{API}/wallets/topup", data=padded(topup, MAX_BODY_BYTES), headers=json_type)
    assert r.status == 201


# ---------------------------------------------------------------- keys and scopes


async def test_no_valid_key_is_401(anon, conn):
    before = snapshot(conn)
    for headers in ({}, bearer("wsk_" + "0" * 64)):
        r = await anon.post(BATCH, json={"operations": [op("topup", "k_1")]}, headers=headers)
        assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert (await error_of(r))["code"] == "UNAUTHENTICATED"
    assert snapshot(conn) == before


async def test_a_key_without_any_posting_scope_is_403_whole(anon, db_url, conn):
    before = snapshot(conn)
    for scopes in (["read"], ["read", "reverse"]):
        secret = create_key(db_url, scopes, "no-posting-" + "-".join(scopes))
        r = await anon.post(BATCH, json={"operations": [op("topup", "k_2")]}, headers=bearer(secret))
        assert r.status == 403
        error = await error_of(r)
        assert error["code"] == "FORBIDDEN" and error["details"] == {"required_scope": "topup"}
        assert "bonus" in error["message"] and "spend" in error["message"]
    assert snapshot(conn) == before


@pytest.mark.parametrize("scope", [*POSTING_SCOPES, "admin"])
async def test_each_posting_scope_opens_the_route_for_its_own_operations(anon, db_url, conn, scope):
    secret = create_key(db_url, [scope], f"only-{scope}")
    items = [op(operation, f"k_{scope}_{operation}") for operation in POSTING_SCOPES]
    results = await post_batch(anon, items, bearer(secret))
    expected = [201 if scope in (operation, "admin") else 403 for operation in POSTING_SCOPES]
    assert [r["status"] for r in results] == expected
    for operation, result in zip(POSTING_SCOPES, results, strict=True):
        if result["status"] == 403:
            assert result["body"]["error"]["details"] == {"required_scope": operation}


# ---------------------------------------------------------------- concurrency


async def test_concurrent_batches_over_the_same_players(aiohttp_client, app_url, auth_headers, conn, caplog):
    """Two batches at once (separate pooled connections) over the same players, one listing them in the
    other's reverse order, several rounds: no deadlock, no lock timeout, every operation posted, the books
    consistent and an event for every transaction."""
    caplog.set_level(logging.INFO, logger="service.database")
    client = await aiohttp_client(create_app(app_url, pool_min_size=2, pool_max_size=4), headers=auth_headers)
    players = [f"c_player_{i}" for i in range(20)]
    # their wallets opened first: two batches opening one wallet at once is a (retried) serialization failure
    opened = await post_batch(client, [op("topup", f"c_open_{p}", user_id=p, amount=1) for p in players])
    assert {r["status"] for r in opened} == {201}
    expected = dict.fromkeys(players, 1)
    for rnd in range(4):
        batches = []
        for side, order in (("a", players), ("b", players[::-1])):
            items = []
            for i, player in enumerate(order * 10):
                if rnd == 0 or i % 4:
                    items.append(op("topup", f"c_{rnd}_{side}_{i}", user_id=player, amount=7))
                else:
                    items.append(op("spend", f"c_{rnd}_{side}_{i}", user_id=player, amount=3))
            batches.append(items)
        answers = await asyncio.gather(*(client.post(BATCH, json={"operations": b}) for b in batches))
        for items, r in zip(batches, answers, strict=True):
            assert r.status == 200, await r.text()
            results = (await r.json())["results"]
            assert [x["status"] for x in results] == [201] * len(items)
            for item in items:
                expected[item["user_id"]] += item["amount"] if item["operation"] == "topup" else -item["amount"]
    retries = [rec.getMessage() for rec in caplog.records if "retrying after" in rec.getMessage()]
    assert retries == []  # not one deadlock (40P01) or lock timeout (55P03), even retried
    balances = dict(conn.execute("SELECT user_id, balance FROM wallets WHERE user_id LIKE 'c_player_%'").fetchall())
    assert balances == expected
    assert violations(conn) == []
    every_transaction_has_its_event(conn)
    count = conn.execute("SELECT count(*) FROM transactions WHERE reference_id ~ '^c_[0-9]'").fetchone()[0]
    assert count == 4 * 2 * len(players) * 10
