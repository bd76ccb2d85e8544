"""Grants: `wallet-service grant --file` posting a generated CSV of bonuses to the bench players, timed as a
user runs it (its own process, DATABASE_URL), then counted in the ledger: every row must have posted once."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tools.bench.results import Result

COLUMNS = ("user_id", "asset_code", "amount", "reference_id", "operation", "bonus_type")
TARGET_ROWS = 10**6
TARGET_SECONDS = 180.0  # the target: 10^6 rows within 3 minutes


def scenario(rows: int) -> str:
    return f"grant --file, {rows:,} rows (bonuses)"


def write_csv(path: Path, rows: int, players: int, prefix: str) -> None:
    """`rows` bonus rows over the players bench_1..bench_<players> in turn (amounts 1 to 100), reference ids
    <prefix>-1 .. <prefix>-<rows>; the header row names the columns."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows(
            (f"bench_{i % players + 1}", "GOLD_COINS", i % 100 + 1, f"{prefix}-{i}", "bonus", "bench_grant")
            for i in range(1, rows + 1)
        )


def posted(url: str, prefix: str) -> int:
    """Transactions in the ledger whose reference id is one of the file's."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM transactions WHERE reference_id LIKE %s", (f"{prefix}-%",)).fetchone()
    return int(row[0]) if row else 0


def run_grant(url: str, csv_path: Path, rows: int, prefix: str) -> Result:
    """`wallet-service grant --file csv_path` against `url`: its wall-clock seconds (the command's whole run, as
    a user waits for it), rows per second, and as errors the rows that did not post (all of them when the
    command fails)."""
    env = {**os.environ, "DATABASE_URL": url}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "service", "grant", "--file", str(csv_path)], env=env, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    done = posted(url, prefix)
    note = ""
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        note = f"exit status {proc.returncode}: {lines[-1][:200] if lines else ''}"
    elif done != rows:
        note = f"{done:,} of {rows:,} rows posted"
    return Result(
        "grant", scenario(rows), rows / seconds, rows, 0.0, 0.0, 0.0, rows - done, note=note, extra={"seconds": seconds}
    )
