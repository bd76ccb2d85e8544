"""HTTP-level load: `wallet-service serve` in its own process (tools.launcher.Serve), wrk (Lua scripts in
scripts/) as the load generator in another."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.bench.results import Result

SCRIPTS = Path(__file__).resolve().parent / "scripts"

# scenario name (as in sqlload.SCENARIOS) -> wrk script
SCENARIOS: dict[str, str] = {
    "top-ups, many players": "wrk_topup.lua",
    "spends, many players": "wrk_spend.lua",
    "purchases of 2 assets, many players": "wrk_purchase.lua",
    "one hot player (top-up/spend 50/50)": "wrk_hot.lua",
    "read-heavy mix (35% balance, 35% history, 15% top-up, 15% spend)": "wrk_mixed.lua",
}


BATCH_SCRIPT = "wrk_batch.lua"  # POST /wallets/batch: the scenarios of sqlload.batch_scenario(size), size as args[3]


# the scenario also measured against `serve --workers N` (N > 1), as "<scenario>, N workers"
WORKERS_SCENARIO = "top-ups, many players"


def workers_scenario(workers: int) -> str:
    """The name of WORKERS_SCENARIO run against `serve --workers <workers>`."""
    return f"{WORKERS_SCENARIO}, {workers} workers"


def worker_counts(option: str) -> list[int]:
    """The --http-workers option: the worker counts above 1 to measure WORKERS_SCENARIO with, in order."""
    counts = [int(part) for part in option.split(",") if part.strip()]
    if any(n < 1 for n in counts):
        raise ValueError(f"--http-workers takes worker counts of at least 1, not {option!r}")
    return list(dict.fromkeys(n for n in counts if n > 1))  # 1 worker: every scenario runs on one anyway


def wrk_binary() -> str:
    """wrk, installed from Debian on first use if it is missing (needs root)."""
    found = shutil.which("wrk")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
        if subprocess.run(install, capture_output=True).returncode != 0:  # no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            subprocess.run(install, capture_output=True)
        found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    return found


def service_available() -> bool:
    """The HTTP service module exists (service/server.py)."""
    import importlib.util

    return importlib.util.find_spec("service.server") is not None


@dataclass
class Tally:
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    # latency percentiles per round, weighted by requests when combined
    rounds: list[tuple[int, float, float, float]] | None = None
    server_cpu: float = 0.0  # seconds of the database server's CPU during the runs (own server only)
    service_cpu: float = 0.0  # seconds of the service's CPU (every worker's) during the runs
    workers: int = 1  # processes of `serve --workers N`
    batch: int = 0  # a batch scenario's operations per request (0: not a batch scenario)

    def result(self, scenario: str) -> Result:
        rounds = self.rounds or []
        total = sum(r[0] for r in rounds) or 1
        p50, p95, p99 = (sum(r[0] * r[i] for r in rounds) / total for i in (1, 2, 3))
        tps = self.requests / self.seconds if self.seconds else 0.0
        note = "" if len(rounds) <= 1 else "latency: request-weighted mean of the rounds' percentiles"
        extra: dict[str, float] = {"service_cpu_ms": 1000 * self.service_cpu / self.requests} if self.requests else {}
        if self.workers > 1:
            extra["workers"] = self.workers
        if self.batch:
            extra["batch_size"] = self.batch
        if self.server_cpu and self.requests:
            extra["server_cpu_ms"] = 1000 * self.server_cpu / self.requests
        return Result("HTTP", scenario, tps, self.requests, p50, p95, p99, self.errors, note=note, extra=extra)


def run_wrk(base: str, script: str, clients: int, seconds: float, players: int, key: str, tally: Tally) -> None:
    """One wrk run of `script` (appended to wrk_common.lua) against `base`, every request with the API key
    `key` (a batch scenario's requests with tally.batch operations each, from one thread per connection, each
    over its own stripe of the players, as scripts/batch.sql at the SQL level); adds to `tally`. A batch
    operation that did not post counts as an error."""
    threads = max(1, min(clients, players)) if tally.batch else min(clients, 2)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write((SCRIPTS / "wrk_common.lua").read_text() + "\n" + (SCRIPTS / script).read_text())
    try:
        argv = [
            wrk_binary(),
            "-t",
            str(threads),
            "-c",
            str(clients),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            lua.name,
            base,
            "--",
            str(players),
            key,
            str(tally.batch),
            str(threads),
        ]
        proc = subprocess.run(argv, capture_output=True, text=True)
    finally:
        os.unlink(lua.name)
    line = next((out for out in proc.stdout.splitlines() if out.startswith("WRKRESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    v = {k: int(x) for k, x in re.findall(r"(\w+)=(\d+)", line)}
    tally.requests += v["requests"]
    tally.seconds += v["duration_us"] / 1e6
    tally.errors += v["connect"] + v["read"] + v["write"] + v["status"] + v["timeout"] + v["items"]
    tally.rounds = (tally.rounds or []) + [(v["requests"], v["p50"] / 1000, v["p95"] / 1000, v["p99"] / 1000)]
