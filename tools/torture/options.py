"""The options of `wallet-service torture`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DESCRIPTION = (
    "Start a PostgreSQL of its own (fsync on) and the service, drive the HTTP API with concurrent "
    "retrying clients (top-ups, bonuses, spends, purchases, reversals, holds that expire, captures, voids, "
    "batches) "
    "while killing the service, the postmaster and database sessions, then check every acknowledged "
    "operation, the reversals and holds, the balances against a model, and wallet_verify(). Exits 1 on any "
    "violation."
)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients (default 32)")
    parser.add_argument(
        "--hot-players", type=int, default=4, help="players that most operations hit: heavy contention (default 4)"
    )
    parser.add_argument(
        "--cold-players", type=int, default=500, help="players hit rarely, most without a wallet at first (default 500)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, printed)")
    parser.add_argument(
        "--kill-service-every",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="kill -9 the service and restart it about this often; 0 = never (default 15)",
    )
    parser.add_argument(
        "--kill-postgres-every",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="kill -9 the postmaster and restart it (crash recovery) about this often; 0 = never (default 20)",
    )
    parser.add_argument(
        "--terminate-backends-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="pg_terminate_backend() random service sessions about this often; 0 = never (default 5)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a client gives up on an attempt after at most this long, then retries "
        "(default 2; each attempt draws a timeout between a tenth of it and it)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="PostgreSQL data directory (default: a scratch directory, removed afterwards)",
    )
    parser.add_argument("--port", type=int, default=0, help="service port (default: a free one)")
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        metavar="N",
        help="run sharded: the service on a PL/Proxy database in front of N shard databases, all in one cluster "
        "of Debian's PostgreSQL (which has PL/Proxy) run as the postgres user; the faults hit all of them "
        "(default 0: one embedded PostgreSQL database)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=64,
        help="with --shards: the partitions players are spread over (a power of two, default 64)",
    )
    parser.add_argument("--report", type=Path, default=None, help="also write the summary as JSON here")


@dataclass
class Options:
    duration: float = 60.0
    clients: int = 32
    hot_players: int = 4
    cold_players: int = 500
    seed: int | None = None
    kill_service_every: float = 15.0
    kill_postgres_every: float = 20.0
    terminate_backends_every: float = 5.0
    request_timeout: float = 2.0
    data_dir: Path | None = None
    port: int = 0
    shards: int = 0
    partitions: int = 64
    report: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})
