"""`wallet-service bench`: SQL-level (pgbench) and HTTP-level (wrk) load and ledger-growth latency.

Modules: options (CLI arguments), run (the whole run), pgserver (the bench's own PostgreSQL), sqlload
(pgbench), httpload (wrk against `wallet-service serve`), growth (bulk-loaded ledgers and read probes),
report (Markdown and PNG); scripts/ holds the pgbench and wrk scripts.
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str], prog: str = "wallet-service bench") -> int:
    from tools.bench import run
    from tools.bench.options import add_arguments

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Start a PostgreSQL of its own (fsync on), or use DATABASE_URL (a scratch database: bench "
        "players are written into it), then measure throughput and latency with pgbench and wrk and read latency "
        "as the ledger grows. Writes a Markdown report and a PNG chart. Needs the `bench` extra.",
    )
    add_arguments(parser)
    return run.main(parser.parse_args(argv), os.environ.get("DATABASE_URL") or None)
