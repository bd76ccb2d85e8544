"""WALLET_GROUP_COMMIT=on (service/database.py, GroupCommit): concurrent top-ups, bonuses and spends share one call
of wallet_post_batch, and each request is answered exactly as it would have been alone."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from service import database
from service.app import create_app
from service.config import Config
from service.database import GROUP_COMMIT, group_of
from service.server import make_app
from tests.access import bearer, create_key
from tests.api.helpers import snapshot, topup_body, violations

WAIT_SECONDS = 30.0  # upper bounds to stop waiting, not speed requirements


@pytest.fixture
async def client(aiohttp_client, app_url, auth_headers):
    app = create_app(app_url, pool_min_size=1, pool_max_size=10, group_commit=True)
    return await aiohttp_client(app, headers=auth_headers)


def lock_wallet(db_url: str, user_id: str, asset_code: str) -> psycopg.Connection:
    """A connection holding the wallet's row lock (FOR UPDATE) until it rolls back."""
    holder = psycopg.connect(db_url)
    holder.execute("SELECT 1 FROM wallets WHERE user_id = %s AND asset_code = %s FOR UPDATE", (user_id, asset_code))
    return holder


async def until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


def queued(app) -> int:
    return sum(len(queue) for queue in group_of(app).queues.values())


async def test_grouped_postings_are_answered_as_each_alone(client, conn, db_url, monkeypatch):
    """A posting goes alone while none is in flight; the ones arriving meanwhile wait and then share one call
    of wallet_post_batch per actor; each gets its own answer, the single route's: 201 with its balance, 422 or
    404 with the error registry's details, 200 Idempotent-Replayed for its key's second request, 409 naming
    the transaction for another request with that key; each transaction names its own request's API key and
    keeps its metadata."""
    monkeypatch.setattr(database, "GROUP_STALL_SECONDS", WAIT_SECONDS)  # the call in flight counts until it ends
    bonus_key = create_key(db_url, ["bonus"], "test-bonus")
    app = client.server.app
    holder = lock_wallet(db_url, "user_alice", "DIAMONDS")
    try:
        first = asyncio.ensure_future(
            client.post("/api/v1/wallets/topup", json=topup_body(asset_code="DIAMONDS", amount=1, reference_id="g0"))
        )
        await until(lambda: group_of(app).in_flight == 1, "the first posting in flight")
        post, meta = topup_body, {"k": [1.5, "é"]}
        requests = {
            "charlie": ("topup", post(user_id="user_charlie", amount=100, reference_id="g1", metadata=meta), None),
            "overdraw": ("spend", post(user_id="user_bob", amount=60000, reference_id="g2", item_id="x"), None),
            "nobody": ("spend", post(user_id="nobody", amount=1, reference_id="g3", item_id="x"), None),
            "newbie": ("topup", post(user_id="gc_newbie", asset_code="DIAMONDS", amount=7, reference_id="g4"), None),
            "again": ("topup", post(user_id="user_charlie", amount=100, reference_id="g1"), None),
            "conflict": ("topup", post(amount=100, reference_id="g1"), None),  # another player: another request
            "bob_bonus": ("bonus", post(user_id="user_bob", amount=5, reference_id="g5", bonus_type="B"), bonus_key),
            "alice_bonus": ("bonus", post(amount=3, reference_id="g6", bonus_type="B"), bonus_key),
        }  # fmt: skip
        sent = {}
        for name, (route, body, key) in requests.items():  # one after another: a group keeps arrival order
            sent[name] = asyncio.ensure_future(
                client.post(f"/api/v1/wallets/{route}", json=body, headers=bearer(key) if key else None)
            )
            await until(lambda: queued(app) == len(sent), f"{name} waiting")
        assert group_of(app).calls == 0 and not first.done()
    finally:
        holder.rollback()
        holder.close()
    assert (await first).status == 201
    answers = {name: await future for name, future in sent.items()}
    bodies = {name: await r.json() for name, r in answers.items()}
    assert group_of(app).calls == 2  # one call per actor: the admin key's six postings, the bonus key's two

    assert answers["charlie"].status == 201 and bodies["charlie"]["balance"] == 25100
    assert answers["again"].status == 200 and answers["again"].headers["Idempotent-Replayed"] == "true"
    assert bodies["again"] == bodies["charlie"]
    assert set(bodies["charlie"]) == {
        "transaction_id", "user_id", "asset_code", "amount", "balance", "transaction_type", "timestamp",
    }  # fmt: skip
    assert answers["conflict"].status == 409 and bodies["conflict"]["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert bodies["conflict"]["error"]["details"]["transaction_id"] == bodies["charlie"]["transaction_id"]
    assert answers["overdraw"].status == 422
    assert bodies["overdraw"]["error"]["code"] == "INSUFFICIENT_FUNDS"
    assert bodies["overdraw"]["error"]["details"] == {
        "asset_code": "GOLD_COINS", "required": 60000, "available": 50000, "held": 0,
    }  # fmt: skip
    assert answers["nobody"].status == 404 and bodies["nobody"]["error"]["code"] == "WALLET_NOT_FOUND"
    assert answers["newbie"].status == 201 and bodies["newbie"]["balance"] == 7
    assert answers["bob_bonus"].status == 201 and bodies["bob_bonus"]["balance"] == 50005
    assert bodies["bob_bonus"]["transaction_type"] == "BONUS"
    assert answers["alice_bonus"].status == 201 and bodies["alice_bonus"]["balance"] == 100003

    actors = dict(conn.execute("SELECT reference_id, actor FROM transactions WHERE reference_id LIKE 'g_'").fetchall())
    assert actors == {
        "g0": "test-admin", "g1": "test-admin", "g4": "test-admin", "g5": "test-bonus", "g6": "test-bonus",
    }  # fmt: skip
    stored = conn.execute("SELECT metadata, payment_method FROM transactions WHERE reference_id = 'g1'").fetchone()
    assert stored == ({"k": [1.5, "é"]}, None)  # the first request's (a replay compares no metadata)
    assert violations(conn) == []


async def test_a_group_that_meets_a_locked_wallet_sends_each_posting_alone(client, conn, db_url, monkeypatch):
    """The group's call fails on a wallet locked elsewhere (lock timeout): nothing of it is written, and each
    of its postings goes again alone; the one whose wallet is free is answered while the other wallet is still
    locked, the locked one once its lock goes."""
    monkeypatch.setattr(database, "GROUP_STALL_SECONDS", WAIT_SECONDS)
    app = client.server.app
    first_lock = lock_wallet(db_url, "user_alice", "DIAMONDS")
    bob_lock = lock_wallet(db_url, "user_bob", "GOLD_COINS")
    try:
        first = asyncio.ensure_future(
            client.post("/api/v1/wallets/topup", json=topup_body(asset_code="DIAMONDS", amount=1, reference_id="l0"))
        )
        await until(lambda: group_of(app).in_flight == 1, "the first posting in flight")
        charlie = asyncio.ensure_future(
            client.post("/api/v1/wallets/topup", json=topup_body(user_id="user_charlie", amount=9, reference_id="l1"))
        )
        bob = asyncio.ensure_future(
            client.post("/api/v1/wallets/topup", json=topup_body(user_id="user_bob", amount=8, reference_id="l2"))
        )
        await until(lambda: queued(app) == 2, "both postings waiting")
        first_lock.rollback()
        assert (await first).status == 201
        answer = await asyncio.wait_for(charlie, WAIT_SECONDS)  # while bob's wallet is still locked
        assert answer.status == 201 and (await answer.json())["balance"] == 25009
        assert group_of(app).calls == 1 and not bob.done()
    finally:
        first_lock.rollback()
        first_lock.close()
        bob_lock.rollback()
        bob_lock.close()
    answer = await asyncio.wait_for(bob, WAIT_SECONDS)
    assert answer.status == 201 and (await answer.json())["balance"] == 50008
    counts = conn.execute(
        "SELECT reference_id, count(*) FROM transactions WHERE reference_id IN ('l1', 'l2') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert counts == [("l1", 1), ("l2", 1)]
    assert violations(conn) == []


async def test_a_call_stalled_on_a_locked_wallet_holds_the_others_back_only_briefly(client, db_url):
    """A call in flight past GROUP_STALL_SECONDS (here: its wallet is locked elsewhere) stops counting: a posting
    arriving later goes without waiting for it."""
    app = client.server.app
    holder = lock_wallet(db_url, "user_alice", "DIAMONDS")
    try:
        stuck = asyncio.ensure_future(
            client.post("/api/v1/wallets/topup", json=topup_body(asset_code="DIAMONDS", amount=1, reference_id="s0"))
        )
        await until(lambda: group_of(app).in_flight == 1, "the first posting in flight")
        answer = await client.post("/api/v1/wallets/topup", json=topup_body(user_id="user_charlie", reference_id="s1"))
        assert answer.status == 201 and (await answer.json())["balance"] == 30000
        assert not stuck.done()
    finally:
        holder.rollback()
        holder.close()
    assert (await stuck).status == 201


async def test_a_group_holds_at_most_max_group_postings(client, conn, db_url, monkeypatch):
    """Five waiting postings with MAX_GROUP 2: two calls of two, and the fifth alone (its single function)."""
    monkeypatch.setattr(database, "GROUP_STALL_SECONDS", WAIT_SECONDS)
    monkeypatch.setattr(database, "MAX_GROUP", 2)
    app = client.server.app
    holder = lock_wallet(db_url, "user_alice", "DIAMONDS")
    try:
        first = asyncio.ensure_future(
            client.post("/api/v1/wallets/topup", json=topup_body(asset_code="DIAMONDS", amount=1, reference_id="m0"))
        )
        await until(lambda: group_of(app).in_flight == 1, "the first posting in flight")
        waiting = [
            asyncio.ensure_future(
                client.post("/api/v1/wallets/topup", json=topup_body(user_id=f"m_{i}", amount=i, reference_id=f"m{i}"))
            )
            for i in range(1, 6)
        ]
        await until(lambda: queued(app) == 5, "five postings waiting")
    finally:
        holder.rollback()
        holder.close()
    assert (await first).status == 201
    answers = [await future for future in waiting]
    assert [(r.status, (await r.json())["balance"]) for r in answers] == [(201, i) for i in range(1, 6)]
    assert group_of(app).calls == 2
    assert conn.execute("SELECT count(*) FROM transactions WHERE reference_id ~ '^m[1-5]$'").fetchone()[0] == 5


async def test_a_posting_past_its_deadline_while_waiting_leaves_and_is_never_sent(client, conn, db_url, monkeypatch):
    """A waiting posting whose deadline passes is 503 CONCURRENCY_CONFLICT (Retry-After), as at the wallet
    gate, and leaves the queue: nothing of it is written when the next group goes."""
    monkeypatch.setattr(database, "GROUP_STALL_SECONDS", WAIT_SECONDS)
    app = client.server.app
    holder = lock_wallet(db_url, "user_alice", "DIAMONDS")
    try:
        first = asyncio.ensure_future(
            client.post("/api/v1/wallets/topup", json=topup_body(asset_code="DIAMONDS", amount=1, reference_id="d0"))
        )
        await until(lambda: group_of(app).in_flight == 1, "the first posting in flight")
        monkeypatch.setattr(database, "WALLET_DEADLINE_SECONDS", 0.5)  # for the next request only
        late = await client.post("/api/v1/wallets/topup", json=topup_body(user_id="user_charlie", reference_id="d1"))
        assert late.status == 503 and late.headers["Retry-After"] == "1"
        assert (await late.json())["error"]["code"] == "CONCURRENCY_CONFLICT"
        assert queued(app) == 0 and not first.done()
    finally:
        holder.rollback()
        holder.close()
    assert (await first).status == 201
    await until(lambda: group_of(app).in_flight == 0, "nothing in flight")
    assert conn.execute("SELECT count(*) FROM transactions WHERE reference_id = 'd1'").fetchone()[0] == 0
    assert group_of(app).calls == 0


@pytest.mark.parametrize(
    "operation,extra", [("topup", {}), ("bonus", {"bonus_type": "T"}), ("spend", {"item_id": "sword"})]
)
async def test_twenty_identical_requests_post_once(client, conn, operation, extra):
    """As tests/api/test_api_concurrency.py, with the group commit on (the per-wallet gate lets two calls of
    one wallet in at once: one in flight, one waiting for the next group)."""
    before = snapshot(conn)
    body = topup_body(reference_id=f"race_{operation}", amount=70, **extra)
    responses = await asyncio.gather(*(client.post(f"/api/v1/wallets/{operation}", json=body) for _ in range(20)))
    assert sorted(r.status for r in responses) == [200] * 19 + [201]
    bodies = [await r.json() for r in responses]
    assert len({b["transaction_id"] for b in bodies}) == 1 and len({b["balance"] for b in bodies}) == 1
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in responses if r.status == 200)
    assert snapshot(conn)[0] == before[0] + 1
    assert violations(conn) == []


async def test_concurrent_spends_never_overdraw(client, conn):
    """bob has 50000: 30 spends of 2000 race, grouped; exactly 25 fit, the rest are 422 and write nothing."""
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/wallets/spend",
                json=topup_body(user_id="user_bob", amount=2000, reference_id=f"od{i}", item_id="x"),
            )
            for i in range(30)
        )
    )
    assert sorted(r.status for r in responses) == [201] * 25 + [422] * 5
    balance = conn.execute("SELECT balance FROM wallets WHERE user_id = 'user_bob' AND asset_code = 'GOLD_COINS'")
    assert balance.fetchone()[0] == 0
    assert violations(conn) == []


def test_the_setting_is_off_unless_turned_on(app_url):
    assert Config.from_env({}).group_commit is False
    assert Config.from_env({"WALLET_GROUP_COMMIT": "on"}).group_commit is True
    with pytest.raises(ValueError, match="WALLET_GROUP_COMMIT"):
        Config.from_env({"WALLET_GROUP_COMMIT": "sometimes"})
    assert make_app(Config.from_env({"WALLET_GROUP_COMMIT": "on"}), app_url)[GROUP_COMMIT] is True
    assert make_app(Config.from_env({}), app_url)[GROUP_COMMIT] is False
