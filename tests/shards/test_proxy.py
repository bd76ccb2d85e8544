"""What only a sharded ledger can get wrong: players spread over the shards and each at home there, errors
arriving through the proxy exactly as from one server (and without costing the proxy its shard connections),
one reference id for one player across shards, lookups by reference id routed (not fanned out), a shard that
is down answering 503 while the other shard's players go on, verify naming the shard, the event feed and
batches across shards. (The whole HTTP API suite also runs through a proxy: tests/api, [sharded].)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg.types.json import Jsonb

from service.app import create_app
from tests.access import bearer, create_key
from tests.shards.conftest import Sharded

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def shard_of(conn: psycopg.Connection, user_id: str) -> int:
    """The shard (0 or 1) of a player under the fixture's layout: partition hashtext & 7, on shard p mod 2."""
    return conn.execute("SELECT (hashtext(%s) & 7) %% 2", (user_id,)).fetchone()[0]


def players_on(conn: psycopg.Connection, shard: int, count: int, prefix: str = "player") -> list[str]:
    found: list[str] = []
    n = 0
    while len(found) < count:
        candidate = f"{prefix}_{n}"
        if shard_of(conn, candidate) == shard:
            found.append(candidate)
        n += 1
    return found


def error(conn: psycopg.Connection, query: str, params: tuple = ()) -> tuple:
    """(SQLSTATE, message, DETAIL, column) of the error a call raises, UUIDs masked."""
    with pytest.raises(psycopg.Error) as raised:
        conn.execute(query, params)
    diag = raised.value.diag
    mask = lambda text: None if text is None else UUID.sub("<uuid>", text)  # noqa: E731
    return diag.sqlstate, mask(diag.message_primary), mask(diag.message_detail), diag.column_name


@contextmanager
def shard_down(admin_url: str, shard_url: str) -> Iterator[None]:
    """A shard that refuses every connection (and has none left), until the block ends."""
    name = psycopg.conninfo.conninfo_to_dict(shard_url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def admin_url(sharded: Sharded) -> str:
    return sharded.proxy.rsplit("/", 1)[0] + "/postgres"


def test_players_spread_over_both_shards_each_at_home(sharded: Sharded):
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        for n in range(120):
            proxy.execute("SELECT wallet_topup(%s, 'GOLD_COINS', 10, %s)", (f"spread_{n}", f"spread_key_{n}"))
        assert proxy.execute("SELECT * FROM wallet_verify()").fetchall() == []
    counts = []
    for number, url in enumerate(sharded.shards):
        with psycopg.connect(url, autocommit=True) as shard:
            users = [r[0] for r in shard.execute("SELECT user_id FROM wallets WHERE user_id LIKE 'spread_%'")]
            assert all(shard_of(shard, u) == number for u in users), f"a player away from home on s{number}"
            counts.append(len(users))
    assert sum(counts) == 120
    assert min(counts) >= 40, f"players per shard: {counts}"


def test_errors_arrive_through_the_proxy_exactly_as_from_one_server(sharded: Sharded, db_url: str):
    calls = [
        ("SELECT wallet_spend('user_bob', 'GOLD_COINS', 999999999, 'e_spend', 'castle')", ()),
        ("SELECT wallet_spend('nobody', 'GOLD_COINS', 1, 'e_nobody', 'hat')", ()),
        ("SELECT wallet_topup('user_bob', 'NO_SUCH_ASSET', 1, 'e_asset')", ()),
        ("SELECT wallet_topup('user_bob', 'GOLD_COINS', -5, 'e_negative')", ()),
        ("SELECT wallet_topup('user_bob', 'GOLD_COINS', 5, '')", ()),
        ("SELECT wallet_topup('user_bob', 'GOLD_COINS', 7, 'init_bob_gold_001')", ()),
        ("SELECT * FROM wallet_transaction('no_such_reference')", ()),
        ("SELECT * FROM wallet_capture('no_such_hold')", ()),
        ("SELECT * FROM wallet_reverse('e_rev', 'init_bob_gold_001', 'why', 999999999)", ()),
        ("SELECT * FROM wallet_history('user_bob', 'GOLD_COINS', 0)", ()),
        ("SELECT * FROM wallet_events(-1)", ()),
        ("SELECT * FROM wallet_post_batch(%s)", (Jsonb([]),)),
        ("SELECT * FROM wallet_purchase('user_alice', 'e_buy', 'x', %s)", (Jsonb([{"asset_code": "DIAMONDS"}]),)),
    ]
    with psycopg.connect(db_url, autocommit=True) as one, psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        for query, params in calls:
            assert error(proxy, query, params) == error(one, query, params), query


def test_a_refusal_keeps_the_proxy_connection_to_the_shard(sharded: Sharded):
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        bob_shard = sharded.shards[shard_of(proxy, "user_bob")]
        proxy.execute("SELECT * FROM wallet_balances('user_bob')")  # the proxy's session connects to the shard
        name = psycopg.conninfo.conninfo_to_dict(bob_shard)["dbname"]

        def backends() -> set:
            with psycopg.connect(admin_url(sharded), autocommit=True) as admin:
                return {r[0] for r in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))}

        before = backends()
        assert before, "the proxy holds a connection to the shard"
        for n in range(5):
            with pytest.raises(psycopg.Error) as refused:
                proxy.execute("SELECT wallet_spend('user_bob', 'GOLD_COINS', 999999999, %s, 'castle')", (f"r{n}",))
            assert refused.value.diag.sqlstate == "WL001"
        assert backends() == before, "a refusal cost the proxy its connection to the shard"


async def test_a_key_of_one_player_is_a_409_for_a_player_on_the_other_shard(sharded: Sharded, aiohttp_client):
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        (p,) = players_on(proxy, 0, 1, "keyowner")
        (q,) = players_on(proxy, 1, 1, "keythief")
    client = await aiohttp_client(create_app(sharded.app_proxy), headers=bearer(create_key(sharded.proxy)))
    topup = "/api/v1/wallets/topup"
    first = await client.post(topup, json={"user_id": p, "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "k1"})
    assert first.status == 201
    again = await client.post(topup, json={"user_id": q, "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "k1"})
    assert again.status == 409, await again.text()
    body = await again.json()
    assert body["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert body["error"]["details"] == {"reference_id": "k1", "transaction_id": (await first.json())["transaction_id"]}
    # a key refused for its first player stays that player's: another player gets a 409, nothing is posted
    refused = await client.post(
        "/api/v1/wallets/spend",
        json={"user_id": p, "asset_code": "GOLD_COINS", "amount": 10**9, "reference_id": "k2", "item_id": "x"},
    )
    assert refused.status == 422
    other = await client.post(topup, json={"user_id": q, "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "k2"})
    assert other.status == 409
    assert (await other.json())["error"]["details"] == {"reference_id": "k2"}
    # the first player's retry of the same key goes through
    retry = await client.post(topup, json={"user_id": p, "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "k2"})
    assert retry.status == 201
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        assert proxy.execute("SELECT count(*) FROM wallets WHERE user_id = %s", (q,)).fetchone()[0] == 0
        assert proxy.execute("SELECT * FROM wallet_verify()").fetchall() == []


def test_a_lookup_by_reference_id_is_routed_not_fanned_out(sharded: Sharded):
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        # a player on s0 and a key whose directory partition is on s0 too: s1 is not needed to find it
        (p,) = players_on(proxy, 0, 1, "lookup")
        (key,) = players_on(proxy, 0, 1, "lookup_key")
        proxy.execute("SELECT wallet_topup(%s, 'GOLD_COINS', 5, %s)", (p, key))
    with shard_down(admin_url(sharded), sharded.shards[1]), psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        rows = proxy.execute("SELECT user_id, amount FROM wallet_transaction(%s)", (key,)).fetchall()
        assert {tuple(r) for r in rows} == {(p, 5)}
        # a fan-out would have needed s1
        with pytest.raises(psycopg.Error) as down:
            proxy.execute("SELECT count(*) FROM transactions")
        assert down.value.diag.sqlstate == "08006"


async def test_a_shard_down_is_a_503_and_the_other_shard_goes_on(sharded: Sharded, aiohttp_client):
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        (up,) = players_on(proxy, 0, 1, "alive")
        (down,) = players_on(proxy, 1, 1, "gone")
        for user in (up, down):
            proxy.execute("SELECT wallet_topup(%s, 'GOLD_COINS', 5, %s)", (user, f"open_{user}"))
    client = await aiohttp_client(create_app(sharded.app_proxy), headers=bearer(create_key(sharded.proxy)))
    with shard_down(admin_url(sharded), sharded.shards[1]):
        gone = await client.get(f"/api/v1/wallets/{down}/balance")
        assert gone.status == 503, await gone.text()
        assert (await gone.json())["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert "Retry-After" in gone.headers
        alive = await client.get(f"/api/v1/wallets/{up}/balance")
        assert alive.status == 200
    back = await client.get(f"/api/v1/wallets/{down}/balance")
    assert back.status == 200


def test_verify_checks_every_shard_and_names_it(sharded: Sharded):
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        (stranger,) = players_on(proxy, 1, 1, "stranger")
        assert proxy.execute("SELECT * FROM wallet_verify()").fetchall() == []
    # a DBA posting on the wrong shard directly is refused...
    with psycopg.connect(sharded.shards[0], autocommit=True) as s0:
        with pytest.raises(psycopg.Error) as refused:
            s0.execute("SELECT wallet_topup(%s, 'GOLD_COINS', 5, 'wrong_shard')", (stranger,))
        assert refused.value.diag.sqlstate == "WL008"
        assert refused.value.diag.message_primary.startswith(f"player {stranger} does not live on shard s0")
        # ...unless the guard is off
        s0.execute("ALTER TABLE wallets DISABLE TRIGGER wallets_player_at_home")
        s0.execute("SELECT wallet_topup(%s, 'GOLD_COINS', 5, 'wrong_shard')", (stranger,))
        s0.execute("ALTER TABLE wallets ENABLE TRIGGER wallets_player_at_home")
    # and breaks a balance on the other one
    with psycopg.connect(sharded.shards[1], autocommit=True) as s1:
        s1.execute("ALTER TABLE wallets DISABLE TRIGGER USER")
        s1.execute("UPDATE wallets SET balance = balance + 1 WHERE user_id = 'user_bob' OR user_id = 'user_alice'")
        s1.execute("ALTER TABLE wallets ENABLE TRIGGER USER")
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        found = proxy.execute("SELECT invariant, subject FROM wallet_verify()").fetchall()
    assert ("player_not_home", f"s0:{stranger}/GOLD_COINS") in found
    assert any(inv == "stored_balance_mismatch" and subject.startswith("s1:") for inv, subject in found), found
    assert not any(subject.startswith("s0:") and inv != "player_not_home" for inv, subject in found), found


def test_events_of_both_shards_arrive_once_numbered_in_order(sharded: Sharded):
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        players = players_on(proxy, 0, 3, "ev") + players_on(proxy, 1, 3, "ev")
        for round_ in range(4):
            for user in players:
                key = f"ev_{user}_{round_}"
                proxy.execute("SELECT wallet_topup(%s, 'GOLD_COINS', %s, %s)", (user, round_ + 1, key))
        first = proxy.execute("SELECT event_id, reference_id, user_id FROM wallet_events(0, NULL, 10)").fetchall()
        after = first[-1][0]
        rest = proxy.execute("SELECT event_id, reference_id, user_id FROM wallet_events(%s)", (after,)).fetchall()
        events = first + rest
        assert [e[0] for e in events] == list(range(1, len(events) + 1)), "ids 1..n without a gap"
        refs = [e[1] for e in events]
        assert len(refs) == len(set(refs)) == 4 + 4 * len(players), "each transaction exactly once (seed included)"
        for user in players:
            assert [r for r, (_, _, u) in zip(refs, events, strict=True) if u == user] == [
                f"ev_{user}_{n}" for n in range(4)
            ], "a player's events in posting order"
        mine = proxy.execute("SELECT reference_id FROM wallet_events(0, %s)", (players[0],)).fetchall()
        assert [r[0] for r in mine] == [f"ev_{players[0]}_{n}" for n in range(4)]


def test_a_batch_across_shards_answers_each_operation_as_one_server_would(sharded: Sharded, db_url: str):
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        a0, b0 = players_on(proxy, 0, 2, "batch")
        (a1,) = players_on(proxy, 1, 1, "batch")
    operations = [
        {"operation": "topup", "user_id": a0, "asset_code": "GOLD_COINS", "amount": 50, "reference_id": "b1"},
        {"operation": "topup", "user_id": a1, "asset_code": "GOLD_COINS", "amount": 70, "reference_id": "b2"},
        {
            "operation": "spend",
            "user_id": a1,
            "asset_code": "GOLD_COINS",
            "amount": 20,
            "reference_id": "b3",
            "item_id": "hat",
        },
        {"operation": "topup", "user_id": b0, "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "b2"},
        {
            "operation": "spend",
            "user_id": a0,
            "asset_code": "GOLD_COINS",
            "amount": 999,
            "reference_id": "b4",
            "item_id": "car",
        },
        {"operation": "topup", "user_id": a0, "asset_code": "GOLD_COINS", "amount": 50, "reference_id": "b1"},
        {"operation": "bonus", "user_id": 7, "asset_code": "GOLD_COINS", "amount": 1, "reference_id": "b5"},
    ]
    query = (
        "SELECT ordinal, user_id, amount, balance, transaction_type, replayed, sqlstate, message, detail, field "
        "FROM wallet_post_batch(%s)"
    )

    def masked(rows: list) -> list:
        return [tuple(UUID.sub("<uuid>", str(v)) if isinstance(v, str | dict) else v for v in row) for row in rows]

    with psycopg.connect(db_url, autocommit=True) as one, psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        expected = masked(one.execute(query, (Jsonb(operations),)).fetchall())
        got = masked(proxy.execute(query, (Jsonb(operations),)).fetchall())
        assert got == expected
        assert [row[0] for row in got] == list(range(1, len(operations) + 1))
        assert got[3][6] == "WL004", "b2 is a1's (on s1): b0's operation (on s0) is a conflict"
        assert proxy.execute("SELECT * FROM wallet_verify()").fetchall() == []
