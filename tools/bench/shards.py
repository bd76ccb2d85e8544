"""What the PL/Proxy scale-out costs, measured: `python -m tools.bench.shards [--duration S] [--rounds N] ...`.

Topology: three PostgreSQL clusters started here (tools/bench/pgserver.py: Debian binaries as postgres, fsync
on), one database each: the proxy and shards s0 and s1, set up by service.shards.init (64 partitions). Separate
clusters stand in for separate machines: each has its own postmaster, buffers, WAL and fsync, and its CPU is
measured apart (postmaster and backends, from /proc) -- but all three share this machine's cores and disk.

Players bench_1..bench_N are funded through the proxy (so each lives on its home shard). Each database gets a
table bench_players(n, user_id) numbering the players it may call: all of them on the proxy, only the home
players of s0 on s0, so the direct runs never open a wallet away from its home and both kinds of run do the
same one-row lookup.

Scenarios, each run once per round, the order reversed every other round (A B ... B A) so drifting outside
load lands on all of them alike:
  topup_direct       pgbench -M prepared, wallet_topup on shard s0 (its home players)
  topup_proxy        the same script on the proxy database (every player; 2 shards)
  refused_direct     a Python load generator (one thread and connection per client): wallet_spend of 10^12,
                     refused with WL001, on shard s0
  refused_proxy      the same on the proxy: as built, the shard returns the error as data, the proxy re-raises
  refused_proxy_raw  "before": bench_raw_spend on the proxy, a plain PL/Proxy function running the shard's
                     wallet_spend, so the remote ERROR reaches PL/Proxy (which then drops its shard connection)
(pgbench 15 aborts a client on any error but a serialization failure or deadlock, hence the Python generator for
the refusals.) Besides the rate, per call: CPU of each cluster and of the client, and new sessions on the shards
(pg_stat_database.sessions: connection churn).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from service import shards
from tools.bench import pgserver, report, sqlload
from tools.pgbin import ensure_extension

FUNDS = 1000  # each player's opening balance
REFUSED_AMOUNT = 10**12  # a spend no player can afford: WL001
DATABASES = ("proxy", "s0", "s1")
SETTLE_SECONDS = 1.0  # after a run: backends exit, the postmaster reaps them, their statistics are flushed

TOPUP_SCRIPT = """\
\\set p random(1, :players)
\\set r random(1, 9000000000000000000)
SELECT transaction_id, balance FROM wallet_topup((SELECT user_id FROM bench_players WHERE n = :p), 'GOLD_COINS', 10,
       'shb-t-' || :client_id::text || '-' || :r::text, 'bench');
"""
SPEND = "SELECT * FROM wallet_spend(%s, 'GOLD_COINS', %s, %s, 'bench_item')"
RAW_SPEND = "SELECT * FROM bench_raw_spend(%s, 'GOLD_COINS', %s, %s, 'bench_item')"
RAW_SPEND_FUNCTION = f"""
CREATE FUNCTION bench_raw_spend(p_user_id text, p_asset_code text, p_amount bigint, p_reference_id text,
                                p_item_id text)
RETURNS wallet_posting LANGUAGE plproxy AS $$
    CLUSTER '{shards.CLUSTER}';
    RUN ON hashtext(p_user_id);
    SELECT * FROM wallet_spend(p_user_id, p_asset_code, p_amount, p_reference_id, p_item_id);
$$
"""
STATEMENTS = """
SELECT calls, total_exec_time, mean_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 100)
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query !~* 'pg_stat_statements'
 ORDER BY total_exec_time DESC LIMIT %s
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    unit: str
    database: str  # which database the clients call: proxy or s0
    query: str = ""  # a refusal scenario's statement ("": the pgbench top-ups)


SCENARIOS = (
    Scenario("topup_direct", "top-ups, direct to shard s0 (pgbench)", "postings/s", "s0"),
    Scenario("topup_proxy", "top-ups, through the proxy over 2 shards (pgbench)", "postings/s", "proxy"),
    Scenario("refused_direct", "refused spends (WL001), direct to shard s0", "refusals/s", "s0", SPEND),
    Scenario("refused_proxy", "refused spends, proxy, errors as data (as built)", "refusals/s", "proxy", SPEND),
    Scenario("refused_proxy_raw", "refused spends, plain PL/Proxy (before)", "refusals/s", "proxy", RAW_SPEND),
)


@dataclass
class Totals:
    """A scenario's measurements over its rounds."""

    title: str
    unit: str
    rates: list[float] = field(default_factory=list)  # calls/s of each round
    calls: int = 0
    seconds: float = 0.0
    unexpected_errors: int = 0  # pgbench: failed or aborted; refusals: anything but WL001, or a success
    first_error: str = ""
    cpu_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys((*DATABASES, "client"), 0.0))
    shard_sessions: int = 0  # sessions opened on s0 and s1 during the runs (the direct clients' own included)
    latencies_ms: list[float] = field(default_factory=list)
    statements: dict[str, list[dict]] = field(default_factory=dict)  # the last round's, by database

    def summary(self) -> dict:
        per_call = {k: 1000 * v / self.calls if self.calls else 0.0 for k, v in self.cpu_seconds.items()}
        ordered = sorted(self.latencies_ms)
        return {
            "title": self.title,
            "unit": self.unit,
            "median": statistics.median(self.rates) if self.rates else 0.0,
            "min": min(self.rates, default=0.0),
            "max": max(self.rates, default=0.0),
            "rounds": [round(r, 1) for r in self.rates],
            "calls": self.calls,
            "seconds": round(self.seconds, 2),
            "unexpected_errors": self.unexpected_errors,
            "first_error": self.first_error,
            "cpu_ms_per_call": {
                "proxy": per_call["proxy"],
                "shards": per_call["s0"] + per_call["s1"],
                "s0": per_call["s0"],
                "s1": per_call["s1"],
                "client": per_call["client"],
            },
            "shard_sessions": self.shard_sessions,
            "shard_sessions_per_1000_calls": 1000 * self.shard_sessions / self.calls if self.calls else 0.0,
            "latency_ms": {"p50": _percentile(ordered, 50), "p99": _percentile(ordered, 99)},
            "statements_last_round": self.statements,
        }


def _percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


@dataclass
class Setup:
    servers: dict[str, pgserver.BenchServer]
    urls: dict[str, str]  # database URLs, by DATABASES
    players: dict[str, list[str]]  # who each database's clients call: proxy all, s0 its home players
    monitors: dict[str, psycopg.Connection] = field(default_factory=dict)  # one on each database, kept open

    def cpu(self) -> dict[str, float]:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        client = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime  # pgbench, or our threads
        return {name: server.cpu_seconds() for name, server in self.servers.items()} | {"client": client}

    def sessions(self) -> int:
        return self._sum("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")

    def reset_statements(self) -> None:
        for conn in self.monitors.values():
            conn.execute("SELECT pg_stat_statements_reset()")

    def statements(self, limit: int = 6) -> dict[str, list[dict]]:
        """Each database's costliest statements (pg_stat_statements, nested ones included) since the reset:
        where a call's time goes on the proxy and on the shards."""
        return {
            name: [
                {"calls": calls, "total_ms": round(total, 1), "mean_ms": round(mean, 3), "query": query}
                for calls, total, mean, query in conn.execute(STATEMENTS, (limit,))
            ]
            for name, conn in self.monitors.items()
        }

    def directory_rows(self) -> int:
        """Keys claimed in the proxy's key directory (reference_directory), on both shards."""
        return self._sum("SELECT count(*) FROM reference_directory")

    def _sum(self, query: str) -> int:
        rows = [self.monitors[name].execute(query).fetchone() for name in ("s0", "s1")]
        return sum(int(row[0]) for row in rows if row)


def set_up(setup: Setup, players: int) -> None:
    """Start the clusters, install the proxy over the shards, fund the players, number them per database."""
    ensure_extension("plproxy", "plproxy")
    for name, server in setup.servers.items():
        setup.urls[name] = pgserver.create_database(server.start(), f"wallet_{name}")
    shards.init(setup.urls["proxy"], [setup.urls["s0"], setup.urls["s1"]])
    everyone = [f"bench_{i}" for i in range(1, players + 1)]
    with psycopg.connect(setup.urls["proxy"], autocommit=True) as conn:
        conn.execute(
            "SELECT count(*) FROM (SELECT wallet_topup(u, 'GOLD_COINS', %s, 'shb-fund-' || u, 'bench') "
            "FROM unnest(%s::text[]) u) x",
            (FUNDS, everyone),
        )
        conn.execute(RAW_SPEND_FUNCTION)
    with psycopg.connect(setup.urls["s0"], autocommit=True) as conn:
        home = [r[0] for r in conn.execute("SELECT u FROM unnest(%s::text[]) u WHERE _wallet_home(u)", (everyone,))]
    setup.players = {"proxy": everyone, "s0": home}
    for name, url in setup.urls.items():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("CREATE TABLE bench_players (n integer PRIMARY KEY, user_id text NOT NULL)")
            conn.execute(
                "INSERT INTO bench_players SELECT n, u FROM unnest(%s::text[]) WITH ORDINALITY AS x (u, n)",
                (setup.players.get(name, []),),
            )
            conn.execute("VACUUM ANALYZE")
    setup.monitors = {name: psycopg.connect(url, autocommit=True) for name, url in setup.urls.items()}


def tear_down(setup: Setup) -> None:
    for conn in setup.monitors.values():
        conn.close()
    for server in setup.servers.values():
        server.stop()


# ---------------------------------------------------------------- loads


@dataclass
class Run:
    calls: int = 0
    seconds: float = 0.0
    unexpected: int = 0
    first_error: str = ""
    latencies_ms: list[float] = field(default_factory=list)


def topups(url: str, players: int, clients: int, seconds: float, script: Path) -> Run:
    tally = sqlload.Tally()
    sqlload.run_pgbench(url, ["-f", str(script)], clients, seconds, players, tally)
    return Run(tally.processed, tally.seconds, tally.failed + tally.aborted, tally.first_error, tally.latencies or [])


def refusals(url: str, query: str, players: list[str], clients: int, seconds: float) -> Run:
    """`clients` threads, each on its own connection, calling `query` (a spend of REFUSED_AMOUNT) in a loop for
    `seconds`; every call must fail with WL001."""
    runs = [Run() for _ in range(clients)]
    ready = threading.Barrier(clients + 1, timeout=60)  # a client that cannot connect breaks it for all
    start = [0.0]

    def client(i: int) -> None:
        run, rng = runs[i], random.Random()  # seeded afresh: no key of an earlier round comes again
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT 1")
            ready.wait()
            deadline = start[0] + seconds
            while (t0 := time.monotonic()) < deadline:
                args = (rng.choice(players), REFUSED_AMOUNT, f"shb-e-{i}-{rng.getrandbits(62)}")
                try:
                    conn.execute(query, args)
                    run.unexpected += 1
                    run.first_error = run.first_error or "a refused spend posted"
                except psycopg.Error as error:
                    if error.sqlstate != "WL001":
                        run.unexpected += 1
                        run.first_error = run.first_error or f"{error.sqlstate}: {error}"[:200]
                        if conn.broken:
                            break
                run.calls += 1
                run.latencies_ms.append(1000 * (time.monotonic() - t0))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start[0] = time.monotonic()
    ready.wait()
    for thread in threads:
        thread.join()
    total = Run(seconds=time.monotonic() - start[0])
    for run in runs:
        total.calls += run.calls
        total.unexpected += run.unexpected
        total.first_error = total.first_error or run.first_error
        total.latencies_ms += run.latencies_ms
    return total


def measure(setup: Setup, totals: Totals, load: Callable[[], Run]) -> float:
    """Run `load` once; add its calls, CPU and shard sessions to `totals`; its calls/s."""
    setup.reset_statements()
    cpu, sessions = setup.cpu(), setup.sessions()
    run = load()
    time.sleep(SETTLE_SECONDS)
    after = setup.cpu()
    for name, seconds in after.items():
        totals.cpu_seconds[name] += seconds - cpu[name]
    totals.shard_sessions += setup.sessions() - sessions
    totals.statements = setup.statements()
    rate = run.calls / run.seconds if run.seconds else 0.0
    totals.rates.append(rate)
    totals.calls += run.calls
    totals.seconds += run.seconds
    totals.unexpected_errors += run.unexpected
    totals.first_error = totals.first_error or run.first_error
    totals.latencies_ms += run.latencies_ms
    return rate


# ---------------------------------------------------------------- the run


def estimate_inputs(results: dict[str, dict]) -> dict[str, float]:
    """The per-call costs a paper estimate for N shards on separate machines needs (CPU-bound: each figure is
    core-milliseconds per call, measured on this machine)."""
    direct, proxied = results["topup_direct"], results["topup_proxy"]
    cpu_direct, cpu_proxied = direct["cpu_ms_per_call"], proxied["cpu_ms_per_call"]
    return {
        "one shard, postings/s measured (8 clients, 2 cores shared with its client)": direct["median"],
        "shard CPU ms per posting, called directly": cpu_direct["s0"],
        "shard CPU ms per posting through the proxy (both shards: the key claim and the posting)": cpu_proxied[
            "shards"
        ],
        "proxy CPU ms per proxied posting": cpu_proxied["proxy"],
        "client (pgbench) CPU ms per posting, direct": cpu_direct["client"],
        "client (pgbench) CPU ms per posting, proxied": cpu_proxied["client"],
        "postings/s per shard core, CPU-bound (1000 / shard CPU ms through the proxy)": 1000 / cpu_proxied["shards"]
        if cpu_proxied["shards"]
        else 0.0,
        "postings/s per proxy core, CPU-bound (1000 / proxy CPU ms)": 1000 / cpu_proxied["proxy"]
        if cpu_proxied["proxy"]
        else 0.0,
    }


def table(results: dict[str, dict]) -> str:
    head = (
        f"{'scenario':<50} {'unit':<11} {'median':>8} {'min-max':>15} {'calls':>8} {'unexp':>5} "
        f"{'proxy':>6} {'shards':>6} {'client':>6} {'sess/1k':>8} {'p50 ms':>7}"
    )
    lines = [head, " " * 96 + "CPU ms per call", "-" * len(head)]
    for r in results.values():
        cpu = r["cpu_ms_per_call"]
        spread = f"{r['min']:.0f}-{r['max']:.0f}"
        lines.append(
            f"{r['title']:<50} {r['unit']:<11} {r['median']:>8.0f} {spread:>15} {r['calls']:>8} "
            f"{r['unexpected_errors']:>5} {cpu['proxy']:>6.3f} {cpu['shards']:>6.3f} {cpu['client']:>6.3f} "
            f"{r['shard_sessions_per_1000_calls']:>8.1f} {r['latency_ms']['p50']:>7.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.shards", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds of each scenario in each round (20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each running every scenario once (3)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--players", type=int, default=10_000, help="players funded through the proxy (10000)")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--workdir", type=Path, default=None, help="the clusters' data (default: a temporary folder)")
    args = parser.parse_args(argv)

    started, load_start = time.monotonic(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="wallet-bench-shards-") as tmp:
        workdir = args.workdir or Path(tmp)
        script = Path(tmp) / "topup.sql"
        script.write_text(TOPUP_SCRIPT)
        setup = Setup({name: pgserver.BenchServer(workdir / name) for name in DATABASES}, {}, {})
        totals = {s.name: Totals(s.title, s.unit) for s in SCENARIOS}
        loads: list[float] = []
        try:
            set_up(setup, args.players)
            setup_seconds = time.monotonic() - started
            for round_no in range(args.rounds):
                for s in SCENARIOS if round_no % 2 == 0 else reversed(SCENARIOS):
                    url, players = setup.urls[s.database], setup.players[s.database]
                    load = (
                        partial(refusals, url, s.query, players, args.clients, args.duration)
                        if s.query
                        else partial(topups, url, len(players), args.clients, args.duration, script)
                    )
                    rate = measure(setup, totals[s.name], load)
                    loads.append(os.getloadavg()[0])
                    print(f"round {round_no + 1}/{args.rounds} {s.name:<18} {rate:9.1f} {s.unit}", flush=True)
            directory_rows = setup.directory_rows()
        finally:
            tear_down(setup)
    results = {name: t.summary() for name, t in totals.items()}
    estimate = estimate_inputs(results)
    out: dict[str, Any] = {
        "command": "python -m tools.bench.shards "
        + f"--duration {args.duration:g} --rounds {args.rounds} --clients {args.clients} --players {args.players}",
        "elapsed_s": round(time.monotonic() - started, 1),
        "setup_s": round(setup_seconds, 1),
        "load_average": {
            "start": " ".join(f"{x:.2f}" for x in load_start),
            "end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "1-min after each run, min-max": f"{min(loads, default=0):.2f}-{max(loads, default=0):.2f}",
        },
        "machine": report.machine(),
        "topology": "3 PostgreSQL 15 clusters on this machine (proxy, s0, s1), one database each, 64 partitions; "
        "fsync and synchronous_commit on; clients on the same machine",
        "pgbench": "-M prepared -c CLIENTS -j 2, scripted wallet_topup of a random player (bench_players lookup)",
        "refusals": "Python threads, one psycopg connection each (extended protocol, prepared after 5 calls)",
        "players": {"proxy": len(setup.players["proxy"]), "s0 (home)": len(setup.players["s0"])},
        "scenarios": results,
        # every posting call through the proxy claims its key first, a refused one included
        "key_directory": {
            "rows on the shards at the end": directory_rows,
            "funding + proxied top-ups + proxied refused spends": len(setup.players["proxy"])
            + totals["topup_proxy"].calls
            + totals["refused_proxy"].calls,
        },
        "estimate_inputs": estimate,
    }
    print()
    print(table(results))
    print()
    for key, value in estimate.items():
        print(f"{key}: {value:.3f}")
    print(f"load average: start {out['load_average']['start']}, end {out['load_average']['end']}")
    print(f"took {out['elapsed_s']} s (set-up {out['setup_s']} s)")
    if args.output:
        args.output.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
