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


# ---------------------------------------------------------------- economy operations


def outcomes_of(results: list[tuple[str, object]]) -> Counter:
    return Counter(r[1] if r[0] == "error" else "ok" for r in results)


def sqlstate_of(conn: psycopg.Connection, sql: str) -> str | None:
    """The SQLSTATE sql raises on conn (autocommit); None when it succeeds."""
    try:
        conn.execute(sql)
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


def test_wallet_purchase__20_concurrent_purchases_listing_assets_in_opposite_orders_never_deadlock(db_url, conn):
    funded_for = 7
    for round_ in range(3):  # several rounds: a lock-order deadlock needs an unlucky interleaving
        player = f"p_buyer{round_}"
        conn.execute("SELECT wallet_topup(%s, 'GOLD_COINS', %s, %s)", (player, 10 * funded_for, f"{player}_gold"))
        conn.execute("SELECT wallet_topup(%s, 'DIAMONDS', %s, %s)", (player, 2 * funded_for, f"{player}_diamonds"))
        gold_first = '[{"asset_code": "GOLD_COINS", "amount": 10}, {"asset_code": "DIAMONDS", "amount": 2}]'
        diamonds_first = '[{"asset_code": "DIAMONDS", "amount": 2}, {"asset_code": "GOLD_COINS", "amount": 10}]'
        calls = [
            (
                "SELECT * FROM wallet_purchase(%s, %s, 'bundle', %s)",
                (player, f"{player}_buy_{i}", gold_first if i % 2 else diamonds_first),
            )
            for i in range(20)
        ]

        results = run_parallel(db_url, calls)

        # no 40P01 (deadlock) and no 55P03 (lock timeout): only successes and insufficient funds
        assert outcomes_of(results) == {"ok": funded_for, "WL001": 20 - funded_for}, results
        assert balance(conn, player) == 0
        assert balance(conn, player, "DIAMONDS") == 0
        count = conn.execute(
            "SELECT count(*) FROM transactions WHERE user_id = %s AND type = 'PURCHASE'", (player,)
        ).fetchone()[0]
        assert count == funded_for


def test_wallet_reverse__10_concurrent_full_reversals_of_one_spend_refund_it_once(db_url, conn):
    conn.execute("SELECT wallet_topup('p_refund', 'GOLD_COINS', 500, 'refund_fund')")
    conn.execute("SELECT wallet_spend('p_refund', 'GOLD_COINS', 300, 'refund_spend', 'sword')")
    calls = [("SELECT * FROM wallet_reverse(%s, 'refund_spend', 'refund')", (f"refund_{i}",)) for i in range(10)]

    results = run_parallel(db_url, calls)

    assert outcomes_of(results) == {"ok": 1, "WL009": 9}, results
    assert balance(conn, "p_refund") == 500
    reversed_ = conn.execute(
        "SELECT count(*), sum(amount) FROM transactions WHERE type = 'REVERSAL' AND reference_id LIKE 'refund\\_%%'"
    ).fetchone()
    assert reversed_ == (1, 300)


def test_wallet_reverse__concurrent_partial_reversals_never_exceed_the_original(db_url, conn):
    conn.execute("SELECT wallet_topup('p_partial', 'GOLD_COINS', 100, 'partial_fund')")
    conn.execute("SELECT wallet_spend('p_partial', 'GOLD_COINS', 100, 'partial_spend', 'sword')")
    calls = [("SELECT * FROM wallet_reverse(%s, 'partial_spend', 'refund', 30)", (f"partial_{i}",)) for i in range(10)]

    results = run_parallel(db_url, calls)

    assert outcomes_of(results) == {"ok": 3, "WL009": 7}, results
    assert balance(conn, "p_partial") == 90


def test_wallet_hold__10_concurrent_holds_of_30_on_100_place_3(db_url, conn):
    conn.execute("SELECT wallet_topup('p_hold', 'GOLD_COINS', 100, 'hold_fund')")
    calls = [("SELECT * FROM wallet_hold('p_hold', 'GOLD_COINS', 30, %s)", (f"hold_{i}",)) for i in range(10)]

    results = run_parallel(db_url, calls)

    assert outcomes_of(results) == {"ok": 3, "WL001": 7}, results
    # each success saw what the ones before it left available
    assert sorted(row[6] for kind, row in results if kind == "ok") == [10, 40, 70]
    row = conn.execute("SELECT balance, held, available FROM wallet_balances('p_hold', 'GOLD_COINS')").fetchone()
    assert row == (100, 90, 10)


def test_wallet_hold__concurrent_holds_and_spends_share_what_is_available(db_url, conn):
    conn.execute("SELECT wallet_topup('p_mix', 'GOLD_COINS', 100, 'mix_fund')")
    holds = [("SELECT * FROM wallet_hold('p_mix', 'GOLD_COINS', 20, %s)", (f"mix_hold_{i}",)) for i in range(6)]
    spends = [("SELECT * FROM wallet_spend('p_mix', 'GOLD_COINS', 20, %s, 'x')", (f"mix_spend_{i}",)) for i in range(6)]

    results = run_parallel(db_url, holds + spends)

    assert outcomes_of(results) == {"ok": 5, "WL001": 7}, results
    placed = sum(1 for kind, _ in results[:6] if kind == "ok")
    row = conn.execute("SELECT balance, held, available FROM wallet_balances('p_mix', 'GOLD_COINS')").fetchone()
    assert row == (100 - 20 * (5 - placed), 20 * placed, 0)


def test_wallet_capture_and_wallet_void__of_one_hold_concurrently__exactly_one_wins(db_url, conn):
    conn.execute("SELECT wallet_topup('p_cv', 'GOLD_COINS', 1000, 'cv_fund')")
    holds = [f"cv_{i}" for i in range(10)]
    for ref in holds:
        conn.execute("SELECT wallet_hold('p_cv', 'GOLD_COINS', 50, %s)", (ref,))
    calls = []
    for ref in holds:
        calls.append(("SELECT * FROM wallet_capture(%s)", (ref,)))
        calls.append(("SELECT * FROM wallet_void(%s)", (ref,)))

    results = run_parallel(db_url, calls)

    captured = 0
    for i, ref in enumerate(holds):
        capture, void = results[2 * i], results[2 * i + 1]
        assert sorted([capture[0], void[0]]) == ["error", "ok"], (ref, capture, void)
        loser = capture if capture[0] == "error" else void
        assert loser[1] == "WL012", (ref, loser)
        status = conn.execute("SELECT status FROM wallet_hold_status(%s)", (ref,)).fetchone()[0]
        assert status == ("CAPTURED" if capture[0] == "ok" else "VOIDED")
        captured += capture[0] == "ok"
    row = conn.execute("SELECT balance, held FROM wallet_balances('p_cv', 'GOLD_COINS')").fetchone()
    assert row == (1000 - 50 * captured, 0)


def test_wallet_capture__10_concurrent_captures_of_one_hold_post_once(db_url, conn):
    conn.execute("SELECT wallet_topup('p_cc', 'GOLD_COINS', 100, 'cc_fund')")
    conn.execute("SELECT wallet_hold('p_cc', 'GOLD_COINS', 60, 'cc_hold')")

    results = run_parallel(db_url, [("SELECT * FROM wallet_capture('cc_hold')", ())] * 10)

    assert all(kind == "ok" for kind, _ in results), results
    assert sorted(row[8] for _, row in results) == [False] + [True] * 9, "one capture, 9 replays"
    assert len({row[0] for _, row in results}) == 1
    assert balance(conn, "p_cc") == 40


def test_wallet_hold__a_hold_stops_counting_at_expires_at(db_url, conn):
    conn.execute("SELECT wallet_topup('p_exp', 'GOLD_COINS', 100, 'exp_fund')")
    conn.execute("SELECT wallet_hold('p_exp', 'GOLD_COINS', 100, 'exp_hold', 1)")
    assert sqlstate_of(conn, "SELECT wallet_spend('p_exp', 'GOLD_COINS', 100, 'exp_spend', 'x')") == "WL001"
    threading.Event().wait(1.2)
    row = conn.execute("SELECT balance FROM wallet_spend('p_exp', 'GOLD_COINS', 100, 'exp_spend', 'x')").fetchone()
    assert row == (0,)
    assert conn.execute("SELECT status FROM wallet_hold_status('exp_hold')").fetchone() == ("EXPIRED",)
    assert sqlstate_of(conn, "SELECT wallet_capture('exp_hold')") == "WL013"


def test_one_key_used_concurrently_for_a_hold_and_a_topup__one_wins_the_other_is_wl004(db_url, conn):
    conn.execute("SELECT wallet_topup('p_hk', 'GOLD_COINS', 1000, 'hk_fund')")
    keys = [f"hk_{i}" for i in range(10)]
    calls = []
    for key in keys:
        calls.append(("SELECT * FROM wallet_hold('p_hk', 'GOLD_COINS', 10, %s)", (key,)))
        calls.append(("SELECT * FROM wallet_topup('p_hk', 'GOLD_COINS', 10, %s)", (key,)))

    results = run_parallel(db_url, calls)

    for i, key in enumerate(keys):
        pair = results[2 * i : 2 * i + 2]
        assert outcomes_of(pair) == {"ok": 1, "WL004": 1}, (key, pair)
        owners = conn.execute(
            "SELECT (SELECT count(*) FROM holds WHERE reference_id = %(key)s),"
            " (SELECT count(*) FROM transactions WHERE reference_id = %(key)s)",
            {"key": key},
        ).fetchone()
        assert owners == ((1, 0) if pair[0][0] == "ok" else (0, 1)), key


def test_one_key_used_concurrently_for_a_hold_and_a_purchase__one_wins_the_other_is_wl004(db_url, conn):
    conn.execute("SELECT wallet_topup('p_pk', 'GOLD_COINS', 1000, 'pk_fund')")
    keys = [f"pk_{i}" for i in range(10)]
    calls = []
    for key in keys:
        calls.append(
            (
                "SELECT * FROM wallet_purchase('p_pk', %s, 'x', '[{\"asset_code\": \"GOLD_COINS\", \"amount\": 10}]')",
                (key,),
            )
        )
        calls.append(("SELECT * FROM wallet_hold('p_pk', 'GOLD_COINS', 10, %s)", (key,)))

    results = run_parallel(db_url, calls)

    for i, key in enumerate(keys):
        pair = results[2 * i : 2 * i + 2]
        assert outcomes_of(pair) == {"ok": 1, "WL004": 1}, (key, pair)


def test_wallet_reverse__a_chargeback_and_a_spend_of_the_same_credits__one_wins(db_url, conn):
    for i in range(5):
        player = f"p_cb{i}"
        conn.execute("SELECT wallet_topup(%s, 'GOLD_COINS', 100, %s)", (player, f"cb_topup_{i}"))
        calls = [
            ("SELECT * FROM wallet_reverse(%s, %s, 'chargeback')", (f"cb_{i}", f"cb_topup_{i}")),
            ("SELECT * FROM wallet_spend(%s, 'GOLD_COINS', 60, %s, 'x')", (player, f"cb_spend_{i}")),
        ]

        results = run_parallel(db_url, calls)

        assert outcomes_of(results) == {"ok": 1, "WL001": 1}, results
        assert balance(conn, player) == (0 if results[0][0] == "ok" else 40)


def test_wallet_expire_holds__skips_a_hold_another_transaction_has_locked(db_url, conn):
    conn.execute("SELECT wallet_topup('p_skip', 'GOLD_COINS', 100, 'skip_fund')")
    conn.execute(
        "SELECT wallet_hold('p_skip', 'GOLD_COINS', 10, 'skip_1', 1),"
        " wallet_hold('p_skip', 'GOLD_COINS', 10, 'skip_2', 1)"
    )
    threading.Event().wait(1.2)
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM holds WHERE reference_id = 'skip_1' FOR UPDATE")
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("SET lock_timeout = '1s'")
            assert other.execute("SELECT wallet_expire_holds()").fetchone() == (1,), (
                "the locked hold is skipped, not waited for"
            )
        holder.rollback()
    assert conn.execute("SELECT wallet_expire_holds()").fetchone() == (1,)
    statuses = conn.execute("SELECT status::text FROM holds WHERE reference_id LIKE 'skip\\_%%' ORDER BY 1").fetchall()
    assert statuses == [("EXPIRED",), ("EXPIRED",)]


def test_wallet_purchase__10_concurrent_calls_with_one_key_write_one_purchase(db_url, conn):
    conn.execute("SELECT wallet_topup('p_pdup', 'GOLD_COINS', 100, 'pdup_gold')")
    conn.execute("SELECT wallet_topup('p_pdup', 'DIAMONDS', 10, 'pdup_diamonds')")
    price = '[{"asset_code": "GOLD_COINS", "amount": 30}, {"asset_code": "DIAMONDS", "amount": 3}]'
    calls = [("SELECT * FROM wallet_purchase('p_pdup', 'pdup_key', 'bundle', %s)", (price,))] * 10

    results = run_parallel(db_url, calls)

    assert all(kind == "ok" for kind, _ in results), results
    assert len({row[0] for _, row in results}) == 1, "every caller gets the same transaction_id"
    assert sorted(row[8] for _, row in results) == [False] + [True] * 9, "one original, 9 replays"
    assert (balance(conn, "p_pdup"), balance(conn, "p_pdup", "DIAMONDS")) == (70, 7)


def test_wallet_reverse__10_concurrent_calls_with_one_key_write_one_reversal(db_url, conn):
    conn.execute("SELECT wallet_topup('p_rdup', 'GOLD_COINS', 100, 'rdup_fund')")
    conn.execute("SELECT wallet_spend('p_rdup', 'GOLD_COINS', 40, 'rdup_spend', 'x')")
    calls = [("SELECT * FROM wallet_reverse('rdup_key', 'rdup_spend', 'refund', 25)", ())] * 10

    results = run_parallel(db_url, calls)

    assert all(kind == "ok" for kind, _ in results), results
    assert sorted(row[8] for _, row in results) == [False] + [True] * 9, "one original, 9 replays"
    assert balance(conn, "p_rdup") == 85


def test_wallet_hold__10_concurrent_calls_with_one_key_place_one_hold(db_url, conn):
    conn.execute("SELECT wallet_topup('p_hdup', 'GOLD_COINS', 100, 'hdup_fund')")
    calls = [("SELECT * FROM wallet_hold('p_hdup', 'GOLD_COINS', 30, 'hdup_key')", ())] * 10

    results = run_parallel(db_url, calls)

    assert all(kind == "ok" for kind, _ in results), results
    assert sorted(row[7] for _, row in results) == [False] + [True] * 9, "one hold, 9 replays"
    row = conn.execute("SELECT balance, held, available FROM wallet_balances('p_hdup', 'GOLD_COINS')").fetchone()
    assert row == (100, 30, 70)
