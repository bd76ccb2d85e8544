"""Concurrency of the SQL API, with real parallel connections (one thread and one connection each)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest


def run_parallel(db_url: str, calls: list[tuple[str, tuple]]) -> list[tuple[str, object]]:
    """Run each (sql, params) on its own connection, all released at once by a barrier.

    Returns per call ("ok", row) or ("error", sqlstate).
    """
    barrier = threading.Barrier(len(calls))

    def one(call: tuple[str, tuple]):
        sql, params = call
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            try:
                return "ok", conn.execute(sql, params).fetchone()
            except psycopg.Error as exc:
                return "error", exc.sqlstate

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


def balance(conn: psycopg.Connection, user_id: str, asset: str = "GOLD_COINS") -> int:
    return conn.execute("SELECT balance FROM wallet_balances(%s, %s)", (user_id, asset)).fetchone()[0]


@pytest.fixture(autouse=True)
def ledger_stays_healthy(conn):
    yield
    assert conn.execute("SELECT * FROM wallet_verify()").fetchall() == []


def test_wallet_spend__50_concurrent_spends_of_30_from_1000_leave_10(db_url, conn):
    conn.execute("SELECT wallet_topup('p_race', 'GOLD_COINS', 1000, 'race_fund')")
    calls = [("SELECT * FROM wallet_spend('p_race', 'GOLD_COINS', 30, %s, 'sword')", (f"race_{i}",)) for i in range(50)]

    results = run_parallel(db_url, calls)

    outcomes = Counter(r[1] if r[0] == "error" else "ok" for r in results)
    assert outcomes == {"ok": 33, "WL001": 17}
    assert balance(conn, "p_race") == 10
    # every success saw a distinct balance on the way down: the spends were serialized, none lost
    seen = sorted(r[1][4] for r in results if r[0] == "ok")
    assert seen == list(range(10, 1000, 30))


def test_wallet_topup__20_concurrent_calls_with_one_key_write_one_transaction(db_url, conn):
    conn.execute("SELECT wallet_topup('p_dup', 'GOLD_COINS', 5, 'dup_open')")
    calls = [("SELECT * FROM wallet_topup('p_dup', 'GOLD_COINS', 100, 'dup_key', 'stripe')", ())] * 20

    results = run_parallel(db_url, calls)

    assert all(kind == "ok" for kind, _ in results), results
    rows = [row for _, row in results]
    assert len({row[0] for row in rows}) == 1, "every caller gets the same transaction_id"
    assert sorted(row[7] for row in rows) == [False] + [True] * 19, "one original, 19 replays"
    assert {row[4] for row in rows} == {105}, "replays report the balance the original left"
    assert conn.execute("SELECT count(*) FROM transactions WHERE reference_id = 'dup_key'").fetchone()[0] == 1
    assert balance(conn, "p_dup") == 105


def test_wallet_topup__concurrent_first_purchases_with_one_key_open_one_wallet(db_url, conn):
    calls = [("SELECT * FROM wallet_topup('p_new', 'DIAMONDS', 7, 'new_key')", ())] * 12

    results = run_parallel(db_url, calls)

    assert all(kind == "ok" for kind, _ in results), results
    assert len({row[0] for _, row in results}) == 1
    assert conn.execute("SELECT count(*) FROM wallets WHERE user_id = 'p_new'").fetchone()[0] == 1
    assert balance(conn, "p_new", "DIAMONDS") == 7


def test_one_key_used_concurrently_for_different_players_posts_once_and_conflicts_the_rest(db_url, conn):
    calls = [("SELECT * FROM wallet_topup(%s, 'GOLD_COINS', 10, 'shared_key')", (f"p_k{i}",)) for i in range(10)]

    results = run_parallel(db_url, calls)

    outcomes = Counter(r[1] if r[0] == "error" else "ok" for r in results)
    assert outcomes == {"ok": 1, "WL004": 9}
    assert conn.execute("SELECT count(*) FROM transactions WHERE reference_id = 'shared_key'").fetchone()[0] == 1


def test_wallet_topup__16_players_topping_up_concurrently_never_deadlock(db_url, conn):
    rounds = 25
    players = [f"p_par{i}" for i in range(16)]
    barrier = threading.Barrier(len(players))
    errors: list[str] = []

    def top_up(player: str) -> None:
        with psycopg.connect(db_url, autocommit=True) as c:
            barrier.wait()
            for n in range(rounds):
                try:
                    c.execute("SELECT wallet_topup(%s, 'GOLD_COINS', 3, %s)", (player, f"{player}_{n}"))
                except psycopg.Error as exc:
                    errors.append(exc.sqlstate or type(exc).__name__)

    threads = [threading.Thread(target=top_up, args=(p,)) for p in players]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    for p in players:
        assert balance(conn, p) == 3 * rounds
    treasury = conn.execute(
        "SELECT balance FROM wallet_system_balances WHERE asset_code = 'GOLD_COINS' AND kind = 'TREASURY'"
    ).fetchone()[0]
    opening = 100000 + 50000 + 25000
    assert treasury == -(opening + 16 * 3 * rounds)


def test_wallet_topup__an_open_topup_does_not_lock_the_treasury(db_url, conn):
    conn.execute("CREATE EXTENSION IF NOT EXISTS pgrowlocks")
    with psycopg.connect(db_url) as holder, psycopg.connect(db_url, autocommit=True) as other:
        # one top-up left uncommitted: it holds its player's wallet row until it ends
        holder.execute("SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'held_open')")

        locked = conn.execute(
            "SELECT w.kind::text, w.user_id FROM pgrowlocks('wallets') l JOIN wallets w ON w.ctid = l.locked_row"
            " WHERE 'For Update' = ANY(l.modes) OR 'Update' = ANY(l.modes) OR 'No Key Update' = ANY(l.modes)"
        ).fetchall()
        assert locked == [("PLAYER", "user_alice")], "only the player's row is locked, never the treasury"

        # holder never ends during this call, so had the top-up of another player needed any lock that
        # holder has (the shared TREASURY row among them), it would end in lock_not_available, not succeed
        row = other.execute("SELECT balance FROM wallet_topup('user_bob', 'GOLD_COINS', 1, 'not_blocked')").fetchone()
        assert row == (50001,)
        holder.rollback()


def test_wallet_spend__waits_for_a_locked_wallet_instead_of_failing_fast(db_url, conn):
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'held')")
        result: list = []
        waiter = threading.Thread(
            target=lambda: result.extend(
                run_parallel(
                    db_url, [("SELECT balance FROM wallet_spend('user_alice', 'GOLD_COINS', 100001, 'waits', 'x')", ())]
                )
            )
        )
        waiter.start()
        # the spend is now blocked on alice's row: see it waiting on a lock, then let the holder commit
        for _ in range(2000):
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%%waits%%'"
            ).fetchone()[0]
            if waiting or not waiter.is_alive():
                break
            threading.Event().wait(0.001)
        assert waiting == 1, "the spend waits for the lock (no NOWAIT)"
        holder.commit()
        waiter.join()
    # it waited, then saw the committed top-up, so 100001 was affordable
    assert result == [("ok", (0,))]


def test_wallet_topup__lock_wait_is_bounded_by_lock_timeout(db_url):
    with psycopg.connect(db_url) as holder, psycopg.connect(db_url, autocommit=True) as other:
        holder.execute("SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'held_long')")
        # the holder never commits during the call: the waiter gives up after the function's lock_timeout
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'gives_up')")
        holder.rollback()
        assert other.execute("SELECT count(*) FROM transactions WHERE reference_id = 'gives_up'").fetchone()[0] == 0
