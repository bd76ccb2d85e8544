"""wallet_post_batch under real concurrent connections: lock order, keys shared with holds and single postings,
and wallets opened by two writers at once."""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

PLAYERS = [f"bc_{i}" for i in range(12)]


@pytest.fixture(autouse=True)
def ledger_stays_healthy(conn):
    yield
    assert conn.execute("SELECT * FROM wallet_verify()").fetchall() == []


def batch(conn: psycopg.Connection, operations: list[dict]) -> list[tuple]:
    return conn.execute(
        "SELECT ordinal, sqlstate, message, balance, replayed FROM wallet_post_batch(%s::jsonb)",
        (json.dumps(operations),),
    ).fetchall()


def test_batches_and_single_postings_over_the_same_wallets_in_any_order_never_deadlock(db_url, conn):
    """Six connections post batches of the same twelve wallets, each batch listing them in its own random order
    (and single top-ups in between): without the ascending lock order two such batches deadlock."""
    for p in PLAYERS:
        conn.execute("SELECT wallet_topup(%s, 'GOLD_COINS', 1000, %s)", (p, f"{p}-fund"))
    rounds, workers = 15, 6
    barrier = threading.Barrier(workers)

    def client(n: int) -> list[str]:
        rng = random.Random(n)
        errors = []
        with psycopg.connect(db_url, autocommit=True) as c:
            barrier.wait()
            for r in range(rounds):
                players = PLAYERS[:]
                rng.shuffle(players)
                ops = [
                    {
                        "operation": "topup",
                        "user_id": p,
                        "asset_code": "GOLD_COINS",
                        "amount": 1,
                        "reference_id": f"bc-{n}-{r}-{p}",
                    }
                    for p in players
                ]
                try:
                    rows = batch(c, ops)
                    errors += [row[1] for row in rows if row[1] is not None]
                    c.execute("SELECT wallet_topup(%s, 'GOLD_COINS', 1, %s)", (players[0], f"bc-single-{n}-{r}"))
                except psycopg.Error as exc:
                    errors.append(exc.sqlstate or type(exc).__name__)
        return errors

    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = [e for result in pool.map(client, range(workers)) for e in result]

    assert errors == []
    balances = dict(
        conn.execute(
            "SELECT user_id, balance FROM wallets WHERE user_id LIKE 'bc\\_%%' AND asset_code = 'GOLD_COINS'"
        ).fetchall()
    )
    singles = dict(
        conn.execute(
            "SELECT user_id, count(*) FROM transactions WHERE reference_id LIKE 'bc-single-%%' GROUP BY user_id"
        ).fetchall()
    )
    assert balances == {p: 1000 + rounds * workers + singles.get(p, 0) for p in PLAYERS}


def test_a_key_a_hold_is_taking_waits_for_it_and_is_then_refused(db_url, conn):
    """The batch takes each new key's advisory lock, like the single functions: while a hold with the key is
    uncommitted the batch waits, and then answers WL004 instead of posting the key a second time."""
    conn.execute("SELECT wallet_topup('bc_holder', 'GOLD_COINS', 100, 'bc-holder-fund')")
    with psycopg.connect(db_url) as holder:  # not autocommit: the hold stays uncommitted
        holder.execute("SELECT * FROM wallet_hold('bc_holder', 'GOLD_COINS', 10, 'bc-shared', 600, 'sword')")
        with ThreadPoolExecutor(max_workers=1) as pool, psycopg.connect(db_url, autocommit=True) as other:
            answer = pool.submit(
                batch,
                other,
                [
                    {
                        "operation": "topup",
                        "user_id": "bc_other",
                        "asset_code": "GOLD_COINS",
                        "amount": 5,
                        "reference_id": "bc-shared",
                    }
                ],
            )
            time.sleep(0.5)
            assert not answer.done(), "the batch did not wait for the key's lock"
            holder.commit()
            rows = answer.result(timeout=10)
    assert rows[0][1] == "WL004"
    assert conn.execute("SELECT count(*) FROM transactions WHERE reference_id = 'bc-shared'").fetchone()[0] == 0


def test_a_wallet_opened_by_a_concurrent_call_fails_the_batch_retryably_and_the_retry_posts(db_url, conn):
    """Two first credits of one new wallet at once: the batch finds the wallet opened under it, writes nothing
    and raises 40001; the same batch again posts on top of the other credit."""
    ops = [
        {
            "operation": "bonus",
            "user_id": "bc_fresh",
            "asset_code": "DIAMONDS",
            "amount": 7,
            "reference_id": "bc-fresh-2",
            "bonus_type": "X",
        }
    ]
    with psycopg.connect(db_url) as opener:
        opener.execute("SELECT wallet_topup('bc_fresh', 'DIAMONDS', 5, 'bc-fresh-1')")
        with ThreadPoolExecutor(max_workers=1) as pool, psycopg.connect(db_url, autocommit=True) as other:
            answer = pool.submit(batch, other, ops)
            time.sleep(0.5)
            opener.commit()
            with pytest.raises(psycopg.errors.SerializationFailure):
                answer.result(timeout=10)
            assert (
                conn.execute("SELECT count(*) FROM transactions WHERE reference_id = 'bc-fresh-2'").fetchone()[0] == 0
            )
            rows = batch(other, ops)
    assert rows[0][1] is None and rows[0][3] == 12
