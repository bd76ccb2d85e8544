"""Events at the SQL level, with real concurrent sessions: a transaction that commits after a later-numbered
one is still delivered exactly once to a reader resuming after the last id it saw; one sequencer at a time;
NOTIFY only from the sequencer; and a concurrent stress of postings, sequencers and a resuming reader that
checks exactly-once delivery and each wallet's order.

The reader here is the app's login (wallet_app): what it sees is what the service sees."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.access import app_login_url

EVENTS = "SELECT event_id, reference_id, user_id, legs FROM wallet_events(%s, %s)"


@pytest.fixture
def reader(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit session as the service's login."""
    with psycopg.connect(app_login_url(db_url), autocommit=True) as connection:
        yield connection


@pytest.fixture(autouse=True)
def ledger_stays_healthy(conn):
    yield
    assert conn.execute("SELECT * FROM wallet_verify()").fetchall() == []


def read_all(reader: psycopg.Connection, after: int, user_id: str | None = None) -> list[tuple]:
    """Every event after `after`, page by page, as a resuming reader gets them."""
    out: list[tuple] = []
    while True:
        page = reader.execute(EVENTS, (after, user_id)).fetchall()
        out += page
        if len(page) < 100:
            return out
        after = page[-1][0]


def inbox_seq(conn: psycopg.Connection, reference_id: str) -> int:
    return conn.execute(
        "SELECT i.seq FROM event_inbox i JOIN transactions t ON t.id = i.transaction_id WHERE t.reference_id = %s",
        (reference_id,),
    ).fetchone()[0]


def test_a_transaction_committing_after_a_later_one_is_delivered_exactly_once(db_url, conn, reader):
    seeded = read_all(reader, 0)
    last = seeded[-1][0]
    with psycopg.connect(db_url) as slow:  # a transaction left open: BEGIN ... (no commit yet)
        slow.execute("SELECT wallet_topup('user_alice', 'GOLD_COINS', 11, 'slow_a', 'card')")
        seq_a = inbox_seq(slow, "slow_a")  # taken first, while it holds alice's wallet
        conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 22, 'fast_b', 'card')")  # commits now
        seq_b = inbox_seq(conn, "fast_b")
        assert seq_a < seq_b, "A took its number first, B committed first: out of their number order"

        # the reader sees B (A is not committed: invisible) and keeps its id
        got_b = read_all(reader, last)
        assert [e[1] for e in got_b] == ["fast_b"]
        last = got_b[-1][0]
        # Numbered by inbox seq (the naive design: the id a transaction took before it committed), B's event
        # would be seq_b, and A's, committed later, seq_a < seq_b: "after seq_b" would skip A forever.
        slow.commit()

    got_a = read_all(reader, last)
    assert [e[1] for e in got_a] == ["slow_a"], "A is delivered after B, once"
    assert got_a[0][0] == last + 1, "with the next id: no gap"
    assert read_all(reader, got_a[0][0]) == []
    everything = read_all(reader, 0)
    assert [e[0] for e in everything] == list(range(1, len(everything) + 1))
    assert [e[1] for e in everything].count("slow_a") == 1


def test_a_rolled_back_transaction_leaves_no_event_and_no_gap(db_url, conn, reader):
    last = read_all(reader, 0)[-1][0]
    with psycopg.connect(db_url) as aborted:
        aborted.execute("SELECT wallet_topup('user_alice', 'GOLD_COINS', 11, 'never', 'card')")
        conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 22, 'after_never', 'card')")
        aborted.rollback()
    got = read_all(reader, last)
    assert [(e[0], e[1]) for e in got] == [(last + 1, "after_never")]


def test_one_sequencer_at_a_time(db_url, conn, reader):
    conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 1, 'seq_1', 'card')")
    with psycopg.connect(db_url) as first:
        # a sequencer inside a transaction holds the lock until that transaction ends
        moved = first.execute("SELECT wallet_events_sequence()").fetchone()[0]
        assert moved == 5  # the 4 seeded transactions and seq_1
        conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 1, 'seq_2', 'card')")
        assert conn.execute("SELECT wallet_events_sequence()").fetchone()[0] == 0, "another one is at work"
        # readers meanwhile see the committed prefix only, without waiting
        assert read_all(reader, 0) == []
        first.commit()
    assert [e[1] for e in read_all(reader, 5)] == ["seq_2"]


def test_not_in_a_repeatable_read_or_read_only_transaction(db_url, conn):
    conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 1, 'rr_1', 'card')")
    for isolation in (psycopg.IsolationLevel.REPEATABLE_READ, psycopg.IsolationLevel.SERIALIZABLE):
        with psycopg.connect(db_url) as session:
            session.isolation_level = isolation
            assert session.execute("SELECT wallet_events_sequence()").fetchone()[0] == 0, isolation
            # and it took no lock: a READ COMMITTED sequencer elsewhere is not held up
            assert conn.execute("SELECT pg_try_advisory_xact_lock(1163284052, 0)").fetchone()[0]
    with psycopg.connect(db_url) as session:
        session.read_only = True
        assert session.execute("SELECT wallet_events_sequence()").fetchone()[0] == 0
        assert [r[1] for r in session.execute(EVENTS, (0, None)).fetchall()] == []  # reads what is numbered
    assert conn.execute("SELECT count(*) FROM event_inbox").fetchone()[0] == 5
    assert conn.execute("SELECT wallet_events_sequence()").fetchone()[0] == 5


def test_only_the_sequencer_notifies_with_the_newest_id(db_url, conn):
    with psycopg.connect(app_login_url(db_url), autocommit=True) as listener:
        listener.execute("LISTEN wallet_events")
        conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 1, 'n_1', 'card')")
        assert list(listener.notifies(timeout=0.3)) == [], "a posting does not NOTIFY"
        assert conn.execute("SELECT wallet_events_sequence()").fetchone()[0] == 5
        (note,) = list(listener.notifies(timeout=2, stop_after=1))
        assert (note.channel, note.payload) == ("wallet_events", "5")
        assert conn.execute("SELECT wallet_events_sequence()").fetchone()[0] == 0
        assert list(listener.notifies(timeout=0.3)) == [], "nothing moved: no NOTIFY"


def test_concurrent_postings_sequencers_and_a_resuming_reader(db_url, conn):
    """Writers on two hot wallets and many cold ones, commits delayed at random (so they commit out of their
    inbox order), three sequencers, and a reader that resumes after its last id with a random page size: the
    reader gets every transaction exactly once, ids 1..n in order, and each wallet's balances in its own order."""
    stop = threading.Event()
    errors: list[BaseException] = []
    posted: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            with psycopg.connect(db_url) as session:
                for i in range(40):
                    user = rng.choice(["user_alice", "user_bob", f"cold_{n}_{i % 5}"])
                    ref = f"stress_{n}_{i}"
                    session.execute("SELECT wallet_topup(%s, 'GOLD_COINS', %s, %s, 'card')", (user, i + 1, ref))
                    time.sleep(rng.random() * 0.01)  # hold the commit back a little
                    session.commit()
                    with lock:
                        posted.append(ref)
        except BaseException as exc:
            errors.append(exc)

    def sequencer() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as session:
                while not stop.is_set():
                    session.execute("SELECT wallet_events_sequence(%s)", (random.randint(1, 7),))
        except BaseException as exc:
            errors.append(exc)

    delivered: list[tuple] = []

    def read_some(session: psycopg.Connection) -> None:
        after = delivered[-1][0] if delivered else 0
        limit = random.randint(1, 10)
        delivered.extend(
            session.execute(
                "SELECT event_id, reference_id, user_id, legs FROM wallet_events(%s, NULL, %s)", (after, limit)
            ).fetchall()
        )

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    sequencers = [threading.Thread(target=sequencer) for _ in range(3)]
    for thread in writers + sequencers:
        thread.start()
    with psycopg.connect(app_login_url(db_url), autocommit=True) as session:
        while any(t.is_alive() for t in writers):
            read_some(session)
        stop.set()
        for thread in sequencers:
            thread.join()
        before = -1
        while len(delivered) != before:  # the rest
            before = len(delivered)
            read_some(session)
    assert errors == []

    assert [e[0] for e in delivered] == list(range(1, len(delivered) + 1)), "ids 1..n, each once, in order"
    refs = [e[1] for e in delivered]
    assert len(refs) == len(set(refs)), "no transaction twice"
    assert set(refs) == set(posted) | {r for (r,) in conn.execute("SELECT reference_id FROM transactions")}
    assert len(posted) == 8 * 40
    # within each wallet, balance_after only moves on from the previous event's (top-ups: strictly up)
    last_balance: dict[tuple[str, str], int] = {}
    for _id, _ref, user, legs in delivered:
        (leg,) = legs
        wallet = (user, leg["asset_code"])
        assert leg["balance_after"] == last_balance.get(wallet, 0) + leg["amount"], (wallet, leg)
        last_balance[wallet] = leg["balance_after"]
