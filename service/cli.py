"""The `wallet-service` command: serve, migrate, seed, verify."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from service import schema
from service.config import Config, database_url


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    applied, functions = schema.migrate(database_url(config))
    print(f"migrations applied: {applied}; function files applied: {functions}")
    return 0


def cmd_seed(args: argparse.Namespace, config: Config) -> int:
    for row in schema.seed(database_url(config)):
        print(f"{row[1]:<14} {row[2]:<15} {row[3]:>10}  {'already there' if row[7] else 'posted'}")
    return 0


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    violations = schema.verify(database_url(config))
    for invariant, subject, detail in violations:
        print(f"VIOLATION {invariant} {subject}: {detail}")
    print(f"{len(violations)} violation(s)")
    return 1 if violations else 0


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from service import server

    return server.serve(config, host=args.host, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wallet-service",
        description="A double-entry ledger of players' virtual credits. DATABASE_URL picks the database; "
        "without it an embedded PostgreSQL is started in WALLET_DATA_DIR.",
    )
    parser.epilog = "from a source checkout also: " + "; ".join(
        f"{name} ({text})" for name, (_, text) in DEV_COMMANDS.items()
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="migrate, seed and serve the HTTP API",
        description="Migrate, seed, and serve the HTTP API under /api/v1.",
    )
    serve.add_argument("--host", help="address to listen on (default: $HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (default: $PORT or 3000)")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser(
        "migrate",
        help="apply pending migrations and re-apply every function",
        description="Apply pending migrations from sql/, then re-create every function "
        "in procedures/. Safe to run any number of times.",
    )
    migrate.set_defaults(func=cmd_migrate)

    seed = sub.add_parser(
        "seed",
        help="post the demo players' opening balances (idempotent)",
        description="Post the opening balances of user_alice, user_bob and user_charlie. "
        "Running it again writes nothing.",
    )
    seed.set_defaults(func=cmd_seed)

    verify = sub.add_parser(
        "verify",
        help="check every ledger invariant; exit 1 on any violation",
        description="Run wallet_verify() and print every violation; exits 1 if there "
        "is any, 0 when the ledger is healthy.",
    )
    verify.set_defaults(func=cmd_verify)

    return parser


# Development commands: they live in the checkout's tools/ package, which the wheel does not ship.
DEV_COMMANDS = {
    "torture": ("tools.torture", "load + fault injection (kill -9 service/PostgreSQL) + integrity check"),
    "bench": ("tools.bench", "benchmark: SQL and HTTP load, ledger growth; writes docs/benchmarks.md"),
}


def run_dev_command(name: str, argv: list[str]) -> int:
    module_name, _ = DEV_COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        print(f"wallet-service {name} runs from a source checkout only (pip install -e . there)", file=sys.stderr)
        return 2
    return int(module.main(argv, prog=f"wallet-service {name}"))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DEV_COMMANDS:
        return run_dev_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args, Config.from_env()))


if __name__ == "__main__":
    sys.exit(main())
