"""The `wallet-service` command: serve, migrate, seed, verify."""

from __future__ import annotations

import argparse
import logging
import sys

from service import db
from service.config import Config


def _database_url(config: Config) -> str:
    if config.database_url is None:
        from service import embedded

        return embedded.start(config.data_dir)
    return config.database_url


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    applied, functions = db.migrate(_database_url(config))
    print(f"migrations applied: {applied}; function files applied: {functions}")
    return 0


def cmd_seed(args: argparse.Namespace, config: Config) -> int:
    for row in db.seed(_database_url(config)):
        print(f"{row[1]:<14} {row[2]:<15} {row[3]:>10}  {'already there' if row[7] else 'posted'}")
    return 0


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    violations = db.verify(_database_url(config))
    for invariant, subject, detail in violations:
        print(f"VIOLATION {invariant} {subject}: {detail}")
    print(f"{len(violations)} violation(s)")
    return 1 if violations else 0


def cmd_bench(args: argparse.Namespace, config: Config) -> int:
    from service.bench import run

    return run.main(args, config.database_url)


def cmd_torture(args: argparse.Namespace, config: Config) -> int:
    from service import torture

    return torture.main(args)


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from service import server

    return server.serve(config, host=args.host, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wallet-service",
        description="A double-entry ledger of players' virtual credits. DATABASE_URL picks the database; "
        "without it an embedded PostgreSQL is started in WALLET_DATA_DIR.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="migrate, seed and serve the HTTP API",
                           description="Migrate, seed, and serve the HTTP API under /api/v1.")
    serve.add_argument("--host", help="address to listen on (default: $HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (default: $PORT or 3000)")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply pending migrations and re-apply every function",
                             description="Apply pending migrations from sql/, then re-create every function "
                             "in procedures/. Safe to run any number of times.")
    migrate.set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed", help="post the demo players' opening balances (idempotent)",
                          description="Post the opening balances of user_alice, user_bob and user_charlie. "
                          "Running it again writes nothing.")
    seed.set_defaults(func=cmd_seed)

    verify = sub.add_parser("verify", help="check every ledger invariant; exit 1 on any violation",
                            description="Run wallet_verify() and print every violation; exits 1 if there "
                            "is any, 0 when the ledger is healthy.")
    verify.set_defaults(func=cmd_verify)

    from service.torture import add_arguments as add_torture_arguments

    torture = sub.add_parser("torture", help="load + fault injection (kill -9 service/PostgreSQL) + integrity check",
                             description="Start a PostgreSQL of its own (fsync on) and the service, drive the "
                             "HTTP API with concurrent retrying clients while killing the service, the postmaster "
                             "and database sessions, then check every acknowledged transaction, the balances "
                             "against a model, and wallet_verify(). Exits 1 on any violation.")
    add_torture_arguments(torture)
    torture.set_defaults(func=cmd_torture)

    from service.bench.options import add_arguments as add_bench_arguments

    bench = sub.add_parser("bench", help="benchmark: SQL and HTTP load, ledger growth; writes docs/benchmarks.md",
                           description="Start a PostgreSQL of its own (fsync on), or use DATABASE_URL (a scratch "
                           "database: bench players are written into it), then measure throughput and latency "
                           "with pgbench and wrk and read latency as the ledger grows. Writes a Markdown report "
                           "and a PNG chart. Needs the `bench` extra.")
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args, Config.from_env())


if __name__ == "__main__":
    sys.exit(main())
