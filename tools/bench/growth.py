"""Ledger growth: bulk-load a ledger to 10^4, 10^6, 10^7 entries and time reads at each size.

The load is one INSERT ... SELECT generate_series per chunk, with triggers (and the foreign-key triggers) off
through session_replication_role = replica, writing data the triggers would have accepted: every
transaction is two entries summing to zero, every player entry continues its wallet's balance_after chain,
every stored balance equals the wallet's newest balance_after, every transaction is numbered as an event.
wallet_verify() proves it on the smaller sizes.

Transaction n (1, 2, ...): every 10th belongs to the whale (`growth_whale`, the player whose history is read),
the others go round-robin over `growth_1` .. `growth_<players>`. A player's k-th transaction is a top-up of
100 when k is odd and a spend of 40 when k is even, so its balance after it is ceil(k/2)*100 - floor(k/2)*40.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import psycopg

from tools.bench.results import Result, summarize

WHALE = "growth_whale"
PAGE = 50

# columns of transaction n: its player and k (the player's k-th transaction); :R is the player count
_PLAN = """
SELECT s.n,
       CASE WHEN s.n % 10 = 0 THEN 'growth_whale' ELSE 'growth_' || ((s.q - 1) % {R} + 1) END AS user_id,
       CASE WHEN s.n % 10 = 0 THEN s.n / 10 ELSE (s.q - 1) / {R} + 1 END AS k
  FROM (SELECT n, n - n / 10 AS q FROM generate_series({first}::bigint, {last}::bigint) n) s
"""

_INSERT_TRANSACTIONS = """
INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, payment_method, item_id,
                          description, created_at)
SELECT md5('growth-' || g.n)::uuid, 'growth-' || g.n,
       CASE WHEN g.k % 2 = 1 THEN 'TOPUP' ELSE 'SPEND' END::transaction_type,
       g.user_id, 'GOLD_COINS', CASE WHEN g.k % 2 = 1 THEN 100 ELSE 40 END,
       CASE WHEN g.k % 2 = 1 THEN 'bench' END, CASE WHEN g.k % 2 = 0 THEN 'bench_item' END,
       CASE WHEN g.k % 2 = 1 THEN 'Top-up via bench' ELSE 'Purchase: bench_item' END,
       timestamptz '2026-01-01 00:00:00+00' + g.n * interval '10 ms'
  FROM ({plan}) g
"""

_INSERT_ENTRIES = """
INSERT INTO ledger_entries (id, transaction_id, wallet_id, asset_code, amount, balance_after, created_at)
OVERRIDING SYSTEM VALUE
SELECT {base} + 2 * g.n - 1 + leg.system::int, md5('growth-' || g.n)::uuid,
       CASE WHEN NOT leg.system THEN w.id WHEN g.k % 2 = 1 THEN {treasury} ELSE {revenue} END,
       'GOLD_COINS',
       (CASE WHEN g.k % 2 = 1 THEN 100 ELSE -40 END) * (CASE WHEN leg.system THEN -1 ELSE 1 END),
       CASE WHEN NOT leg.system THEN (g.k + 1) / 2 * 100 - g.k / 2 * 40 END,
       timestamptz '2026-01-01 00:00:00+00' + g.n * interval '10 ms'
  FROM ({plan}) g
  JOIN wallets w ON w.user_id = g.user_id AND w.asset_code = 'GOLD_COINS'
 CROSS JOIN (VALUES (false), (true)) AS leg (system)
 ORDER BY 1
"""

# every transaction numbered as an event (what the event inbox trigger and wallet_events_sequence would do)
_INSERT_EVENTS = """
INSERT INTO events (id, transaction_id, user_id)
SELECT {events} + g.n, md5('growth-' || g.n)::uuid, g.user_id
  FROM ({plan}) g
"""

# stored balance = the balance after each player's last transaction (closed form of the count)
_UPDATE_BALANCES = """
UPDATE wallets w SET balance = (x.k + 1) / 2 * 100 - x.k / 2 * 40, updated_at = now()
  FROM (SELECT 'growth_whale' AS user_id, {n}::bigint / 10 AS k
        UNION ALL
        SELECT 'growth_' || j, {q}::bigint / {R} + CASE WHEN j <= {q}::bigint % {R} THEN 1 ELSE 0 END
          FROM generate_series(1, {R}) j) x
 WHERE w.user_id = x.user_id AND w.asset_code = 'GOLD_COINS'
"""


class Ledger:
    """A growth ledger in an empty, migrated database; grow() appends transactions up to a size."""

    def __init__(self, url: str, players: int = 10_000, chunk: int = 500_000):
        self.url = url
        self.players = players
        self.chunk = chunk
        self.transactions = 0  # growth transactions loaded so far (2 entries each)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO wallets (asset_code, kind, user_id, name, balance) "
                "SELECT 'GOLD_COINS', 'PLAYER', u, u, 0 FROM (SELECT %s AS u UNION ALL "
                "SELECT 'growth_' || j FROM generate_series(1, %s) j) p",
                (WHALE, players),
            )
            (self.base,) = conn.execute("SELECT coalesce(max(id), 0) FROM ledger_entries").fetchall()[0]
            (self.events,) = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchall()[0]
            self.system: dict[str, int] = {
                kind: wallet_id
                for kind, wallet_id in conn.execute(
                    "SELECT kind::text, id FROM wallets WHERE asset_code = 'GOLD_COINS' AND kind <> 'PLAYER'"
                )
            }

    def grow(self, entries: int, progress: Callable[[int], None] = lambda n: None) -> None:
        """Append transactions until the growth ledger holds `entries` entries; progress(entries added)."""
        target = entries // 2
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute("SET work_mem = '256MB'")
            while self.transactions < target:
                first, last = self.transactions + 1, min(target, self.transactions + self.chunk)
                plan = _PLAN.format(R=self.players, first=first, last=last)
                with conn.transaction():
                    conn.execute(_INSERT_TRANSACTIONS.format(plan=plan))
                    conn.execute(_INSERT_EVENTS.format(plan=plan, events=self.events))
                    conn.execute(
                        _INSERT_ENTRIES.format(
                            plan=plan, base=self.base, treasury=self.system["TREASURY"], revenue=self.system["REVENUE"]
                        )
                    )
                    n = last
                    conn.execute(_UPDATE_BALANCES.format(n=n, q=n - n // 10, R=self.players))
                progress(2 * (last - first + 1))
                self.transactions = last
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('ledger_entries', 'id'), (SELECT max(id) FROM ledger_entries))"
            )
            conn.execute("RESET session_replication_role")
            conn.execute("VACUUM ANALYZE wallets, transactions, ledger_entries")

    def verify(self) -> list[tuple]:
        """wallet_verify()'s violations, but for the hash chain: the bulk load writes no entry_hash (each is
        chained to its wallet's previous one, so they cannot be written set-based), and every bulk-loaded
        entry would be reported. Every other invariant is checked."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute("SELECT * FROM wallet_verify() WHERE invariant <> 'entry_hash_mismatch'").fetchall()

    def probes(self) -> dict[str, tuple[str, tuple]]:
        """Read queries at the current size: name -> (SQL, parameters)."""
        whale_count = self.transactions // 10
        # the whale's entry of its m-th transaction is entry base + 20m - 1: the cursor below the 51st
        # oldest gives the oldest page, the one the offset probe reads too
        cursor = self.base + 20 * (PAGE + 1) - 1
        history = "SELECT * FROM wallet_history(%s, 'GOLD_COINS', {limit}{extra})"
        return {
            "balance": ("SELECT * FROM wallet_balances(%s, 'GOLD_COINS')", ("<random>",)),
            "history, first page": (history.format(limit=PAGE, extra=""), (WHALE,)),
            "history, last page via offset": (
                history.format(limit=PAGE, extra=f", p_offset => {max(0, whale_count - PAGE)}"),
                (WHALE,),
            ),
            "history, last page via cursor": (
                history.format(limit=PAGE, extra=f", p_before_entry_id => {cursor}"),
                (WHALE,),
            ),
        }

    def measure(self, size_label: str, budget_s: float = 3.0, max_calls: int = 400) -> list[Result]:
        """Time each probe from one client (prepared statements, after a warm-up): p50/p95/p99."""
        results = []
        with psycopg.connect(self.url, autocommit=True) as conn:
            for name, (sql, params) in self.probes().items():
                timings: list[float] = []
                rows = 0
                deadline = time.perf_counter() + budget_s
                for i in range(max_calls + 3):
                    args = tuple(f"growth_{random.randint(1, self.players)}" if p == "<random>" else p for p in params)
                    start = time.perf_counter()
                    rows = len(conn.execute(sql, args, prepare=True).fetchall())
                    elapsed = (time.perf_counter() - start) * 1000
                    if i >= 3:  # warm-up: plan caching and the first reads from disk
                        timings.append(elapsed)
                    if i >= 8 and time.perf_counter() > deadline:
                        break
                p50, p95, p99 = summarize(timings)
                results.append(
                    Result(
                        "ledger", name, 0.0, len(timings), p50, p95, p99, 0, extra={"size": size_label, "rows": rows}
                    )
                )
        return results
