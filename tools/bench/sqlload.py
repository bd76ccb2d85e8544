"""SQL-level load: pgbench running the wallet_* functions (scripts/*.sql) and pgbench's own tpcb-like
transaction, same server, same clients, per-transaction logs for the latency percentiles."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tools.bench.results import Result, summarize
from tools.pgbin import bindir

SCRIPTS = Path(__file__).resolve().parent / "scripts"
FUNDS = 10**12  # every bench player's opening balance: spends of 1 never run out

# scenario name -> pgbench script arguments (script files are in scripts/, "@N" is a weight)
SCENARIOS: dict[str, list[str]] = {
    "tpcb-like (pgbench reference)": ["-b", "tpcb-like"],
    "top-ups, many players": ["-f", "topup.sql"],
    "spends, many players": ["-f", "spend.sql"],
    "purchases of 2 assets, many players": ["-f", "purchase.sql"],
    "one hot player (top-up/spend 50/50)": ["-f", "hot_topup.sql@1", "-f", "hot_spend.sql@1"],
    "read-heavy mix (35% balance, 35% history, 15% top-up, 15% spend)": [
        "-f",
        "balance.sql@35",
        "-f",
        "history.sql@35",
        "-f",
        "topup.sql@15",
        "-f",
        "spend.sql@15",
    ],
}
REFERENCE = "tpcb-like (pgbench reference)"
BATCH_SIZES = (10, 100, 1000)  # operations per wallet_post_batch call (and per POST /wallets/batch), by default
PURCHASE = "purchases of 2 assets, many players"
PURCHASE_ASSETS = ("GOLD_COINS", "DIAMONDS")  # what purchase.sql (and wrk_purchase.lua) debit, 1 of each


def batch_scenario(size: int) -> str:
    """The name of the scenario posting batches of `size` operations (the same at the SQL and the HTTP level)."""
    return f"batches of {size} (top-ups/spends 50/50, each client its own players)"


def batch_sizes(option: str) -> list[int]:
    """The --batch-sizes option: batch sizes in order, without repeats ('' for none)."""
    sizes = [int(float(part)) for part in option.split(",") if part.strip()]
    if any(not 1 <= n <= 1000 for n in sizes):
        raise ValueError(f"--batch-sizes takes sizes from 1 to 1000 (the HTTP route's limit), not {option!r}")
    return list(dict.fromkeys(sizes))


def batch_scenarios(sizes: list[int], clients: int, players: int) -> dict[str, list[str]]:
    """scenario name -> pgbench script arguments of the batch scenarios (scripts/batch.sql): one
    wallet_post_batch call of `size` operations per pgbench transaction, each client's operations over its own
    stripe of the players (batches of random players from all of them serialize on each other's wallet
    locks, held to the commit: with 8 clients and 10^4 players, batches of 1000 then ran at about 0.6x the
    posting rate and some waited past the 2 s lock timeout)."""
    stripes = max(1, min(clients, players))
    return {batch_scenario(n): ["-f", "batch.sql", "-D", f"size={n}", "-D", f"stripes={stripes}"] for n in sizes}


def pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    return str(bindir() / "pgbench")


def prepare_wallets(url: str, players: int) -> None:
    """Open and fund bench_1..bench_<players> in every asset of PURCHASE_ASSETS, and bench_hot in GOLD_COINS
    (fixed reference ids: a rerun replays). Through wallet_topup, not a bulk load: every entry is hashed and
    every wallet's chain_head is its newest entry's hash, so the postings of the runs chain onto it and
    wallet_verify() holds on this database."""
    with psycopg.connect(url, autocommit=True) as conn:
        for asset in PURCHASE_ASSETS:
            prefix = "bench-fund-" if asset == "GOLD_COINS" else f"bench-fund-{asset.lower()}-"
            conn.execute(
                "SELECT count(*) FROM (SELECT wallet_topup('bench_' || i, %s, %s, %s || i, 'bench') "
                "FROM generate_series(1, %s) i) x",
                (asset, FUNDS, prefix, players),
            )
        conn.execute("SELECT wallet_topup('bench_hot', 'GOLD_COINS', %s, 'bench-fund-hot', 'bench')", (FUNDS,))
        conn.execute("VACUUM ANALYZE")


def verify(url: str, max_entries: float) -> str:
    """wallet_verify() on the bench players' ledger after the runs (every invariant, the hash chain included:
    the players were funded through wallet_topup), if it holds at most `max_entries` entries."""
    with psycopg.connect(url, autocommit=True) as conn:
        (entries,) = conn.execute("SELECT count(*) FROM ledger_entries").fetchall()[0]
        if entries > max_entries:
            return f"skipped ({entries:,} entries > --verify-runs-max)"
        invariants = [row[0] for row in conn.execute("SELECT invariant FROM wallet_verify()")]
    if not invariants:
        return f"healthy (0 violations) on {entries:,} entries"
    return f"{len(invariants)} VIOLATIONS ({', '.join(sorted(set(invariants)))}) on {entries:,} entries"


def prepare_tpcb(url: str, scale: int) -> None:
    """pgbench -i on its own database (url)."""
    subprocess.run(
        [pgbench_binary(), "-i", "-q", "-s", str(scale), url],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@dataclass
class Tally:
    """A scenario's measurements summed over its rounds."""

    processed: int = 0
    seconds: float = 0.0
    failed: int = 0
    aborted: int = 0
    first_error: str = ""
    latencies: list[float] | None = None
    server_cpu: float = 0.0  # seconds of the database server's CPU during the runs (own server only)
    batch: int = 0  # a batch scenario's operations per call (0: not a batch scenario)

    def result(self, scenario: str) -> Result:
        p50, p95, p99 = summarize(self.latencies or [])
        tps = self.processed / self.seconds if self.seconds else 0.0
        extra: dict[str, float] = {}
        if self.server_cpu and self.processed:
            extra["server_cpu_ms"] = 1000 * self.server_cpu / self.processed
        if self.batch:
            extra["batch_size"] = self.batch
        return Result(
            "SQL",
            scenario,
            tps,
            self.processed,
            p50,
            p95,
            p99,
            self.failed + self.aborted,
            note=self.first_error,
            extra=extra,
        )


def run_pgbench(url: str, args: list[str], clients: int, seconds: float, players: int, tally: Tally) -> None:
    """One pgbench run; adds its transactions, time, errors and per-transaction latencies to `tally`."""
    with tempfile.TemporaryDirectory(prefix="pgbench-log-") as logdir:
        argv = [
            pgbench_binary(),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(max(1, round(seconds))),
            "-D",
            f"players={players}",
            "--log",
            f"--log-prefix={logdir}/tx",
        ]
        argv += [str(SCRIPTS / a) if a.split("@")[0].endswith(".sql") else a for a in args]
        proc = subprocess.run([*argv, url], capture_output=True, text=True)
        out = proc.stdout
        processed = int(_grab(r"number of transactions actually processed: (\d+)", out) or 0)
        tps = float(_grab(r"tps = ([\d.]+)", out) or 0)
        tally.processed += processed
        tally.seconds += processed / tps if tps else max(1, round(seconds))
        tally.failed += int(_grab(r"number of failed transactions: (\d+)", out) or 0)
        aborted = [line for line in proc.stderr.splitlines() if "aborted" in line]
        tally.aborted += len(aborted)
        if proc.returncode not in (0, 2) or (not processed and proc.stderr):
            tally.first_error = tally.first_error or proc.stderr.strip().splitlines()[-1][:200]
        elif aborted:
            tally.first_error = tally.first_error or aborted[0][:200]
        tally.latencies = tally.latencies or []
        for log in Path(logdir).glob("tx*"):
            for line in log.read_text().split("\n"):
                fields = line.split()
                # client_id transaction_no time_us script_no epoch epoch_us [...]; "failed" for a failure
                if len(fields) >= 6 and fields[2].isdigit():
                    tally.latencies.append(int(fields[2]) / 1000.0)


def _grab(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None
