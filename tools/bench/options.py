"""The options of `wallet-service bench` (argparse only: the CLI imports this without the bench extra)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=30, help="seconds per scenario (default 30)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="split each scenario's seconds into this many interleaved rounds (default 6)",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--players", type=int, default=10_000, help="pre-funded players (default 10000)")
    parser.add_argument(
        "--scale",
        type=int,
        default=10,
        help="pgbench -i scale of the tpcb-like reference "
        "(default 10: 10 branches, so 8 clients do not all queue on one branch row)",
    )
    parser.add_argument(
        "--sizes",
        default="1e4,1e6,1e7",
        help="ledger sizes in entries, comma separated (default 1e4,1e6,1e7; empty: skip)",
    )
    parser.add_argument(
        "--batch-sizes",
        default="10,100,1000",
        help="operations per batch for the batch scenarios: wallet_post_batch calls (SQL) and POST /wallets/batch "
        "requests (HTTP), comma separated, 1 to 1000 (default 10,100,1000; empty: skip the batch scenarios)",
    )
    parser.add_argument(
        "--grant-rows",
        type=float,
        default=1e6,
        help="rows of the CSV file that `wallet-service grant --file` posts, timed (default 1e6; 0: skip)",
    )
    parser.add_argument(
        "--verify-max",
        type=float,
        default=1e6,
        help="run wallet_verify() on the ledger sizes up to this many entries (default 1e6)",
    )
    parser.add_argument(
        "--verify-runs-max",
        type=float,
        default=1e7,
        help="run wallet_verify() on the ledger the throughput runs, the batches and the grant wrote if it holds up "
        "to this many entries (default 1e7; a full run writes about 6e6, checked in about 90 s)",
    )
    parser.add_argument("--probe-seconds", type=float, default=3, help="seconds per latency probe (default 3)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP-level scenarios")
    parser.add_argument(
        "--http-workers",
        default="2",
        help="also run the HTTP top-ups against `serve --workers N` for each N listed, beside the one-worker "
        "runs of every HTTP scenario (comma separated; default 2; '' for none)",
    )
    parser.add_argument(
        "--output", type=Path, default=Path("docs/benchmarks.md"), help="Markdown report (default docs/benchmarks.md)"
    )
    parser.add_argument(
        "--chart",
        type=lambda s: Path(s) if s else None,
        default=Path("docs/benchmarks.png"),
        help="PNG chart (default docs/benchmarks.png; '' for none)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the bench server keeps its data (default: a temporary folder, removed)",
    )
