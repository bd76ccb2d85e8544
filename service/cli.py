"""The `wallet-service` command: serve, migrate, seed, verify, keys, grant, shards."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from service import grant, logs, schema
from service.config import Config, database_url

SCOPES = ("read", "topup", "bonus", "spend", "reverse", "admin")  # the wallet_scope enum (sql/0004.trust.sql)


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    url = database_url(config)
    applied, functions = schema.migrate(url)
    print(f"migrations applied: {applied}; function files applied: {functions}")
    for login in args.app_login:
        schema.grant_app_login(url, login)
        print(f"{login}: granted wallet_app")
    if args.seed:
        cmd_seed(args, config)
    return 0


def cmd_seed(args: argparse.Namespace, config: Config) -> int:
    for row in schema.seed(database_url(config)):
        print(f"{row[1]:<14} {row[2]:<15} {row[3]:>10}  {'already there' if row[7] else 'posted'}")
    return 0


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    url = database_url(config)
    violations = schema.verify(url)
    if args.anchor is not None:
        anchor = json.loads(Path(args.anchor).read_text())
        violations += schema.verify_anchor(url, anchor["heads"])
    for invariant, subject, detail in violations:
        print(f"VIOLATION {invariant} {subject}: {detail}")
    heads = schema.chain_heads(url)
    digest = schema.heads_digest(heads)
    if args.save_anchor is not None:
        saved = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "digest": digest, "heads": heads}
        Path(args.save_anchor).write_text(json.dumps(saved, indent=1) + "\n")
        print(f"chain heads saved to {args.save_anchor}: keep that file where this database's owner cannot write")
    print(f"chain heads: {len(heads)} wallets, digest sha256:{digest}")
    print(f"{len(violations)} violation(s)")
    return 1 if violations else 0


def cmd_grant(args: argparse.Namespace, config: Config) -> int:
    return grant.run(grant.options_from(args), database_url(config))


def cmd_shards_init(args: argparse.Namespace, config: Config) -> int:
    from service import shards

    try:
        layout = shards.init(args.proxy, args.shard, args.partitions)
    except shards.ShardError as exc:
        print(f"shards init: {exc}", file=sys.stderr)
        return 2
    for shard in layout:
        print(f"{shard.name}: {shards.conninfo(shard.url)}  partitions {len(shard.partitions)} of {args.partitions}")
    print(f"proxy ready: serve, seed, keys and verify with DATABASE_URL={args.proxy}")
    return 0


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def cmd_keys_create(args: argparse.Namespace, config: Config) -> int:
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    key, secret = schema.create_key(database_url(config), args.name, scopes)
    print(f"created API key {key.name} with scopes {','.join(key.scopes)} at {_when(key.created_at)}")
    print("its secret follows; it is shown this once (only its SHA-256 is stored):")
    print(secret)
    return 0


def cmd_keys_list(args: argparse.Namespace, config: Config) -> int:
    keys = schema.list_keys(database_url(config))
    rows = [("NAME", "SCOPES", "CREATED", "CREATED BY", "REVOKED")]
    rows += [(k.name, ",".join(k.scopes), _when(k.created_at), k.created_by or "-", _when(k.revoked_at)) for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_keys_revoke(args: argparse.Namespace, config: Config) -> int:
    revoked_at = schema.revoke_key(database_url(config), args.name)
    print(f"revoked API key {args.name} at {_when(revoked_at)}; every service refuses it within 5 s")
    return 0


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    workers = config.workers if args.workers is None else args.workers
    if workers < 1:
        print("wallet-service serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if workers > 1 and config.metrics:
        # before prometheus_client is first imported: it picks its multiprocess value class at import time
        from service import metrics_dir

        metrics_dir.prepare()
    from service import server

    return server.serve(config, host=args.host, port=args.port, workers=workers)


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
        help="serve the HTTP API (embedded mode: also migrate, seed and create a local admin key)",
        description="Serve the HTTP API under /api/v1. Without DATABASE_URL: start the embedded PostgreSQL, "
        "migrate and seed it, create the login wallet_service (holding only wallet_app) and, on first start, "
        "an admin API key in WALLET_API_KEY_FILE (default: admin-api-key next to WALLET_DATA_DIR), then serve "
        "as wallet_service. With DATABASE_URL: never migrate or seed; exit 1 if a migration is missing, and "
        "warn when the role has more rights than wallet_app.",
    )
    serve.add_argument("--host", help="address to listen on (default: $HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (default: $PORT or 3000)")
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (default: $WALLET_WORKERS or 1); each has its own connection pool",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser(
        "migrate",
        help="apply pending migrations and re-apply every function",
        description="Apply pending migrations from sql/, then re-create every function "
        "in procedures/ and re-apply ownership and grants. Safe to run any number of times. Needs the owner: "
        "a superuser or a member of wallet_owner.",
    )
    migrate.add_argument(
        "--app-login",
        action="append",
        default=[],
        metavar="LOGIN",
        help="afterwards, grant wallet_app (and its session limits) to this existing login role, the one the "
        "service connects as (repeatable)",
    )
    migrate.add_argument("--seed", action="store_true", help="afterwards, seed the demo players (as `seed` does)")
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
        description="Run wallet_verify() and print every violation, then a digest of every wallet's hash "
        "chain head; exits 1 if there is any violation, 0 when the ledger is healthy. A consistent rewrite that "
        "recomputed every later hash, or removed a wallet's newest entries, is caught only against heads kept "
        "outside the database: --save-anchor writes them, a later --anchor checks them.",
    )
    verify.add_argument("--save-anchor", metavar="FILE", help="write the chain heads (and their digest) to FILE")
    verify.add_argument(
        "--anchor",
        metavar="FILE",
        help="also check the chain heads saved in FILE: each must still be in its wallet, unchanged",
    )
    verify.set_defaults(func=cmd_verify)

    keys = sub.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description="Manage the API keys of the HTTP API, in the database of DATABASE_URL (or the embedded one). "
        "Needs the owner: a superuser or a member of wallet_owner.",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser(
        "create",
        help="create a key; its secret is printed once, alone on the last line",
        description="Create an API key. Its secret is printed once, alone on the last line of the output "
        "(only its SHA-256 is stored).",
    )
    create.add_argument("name", help="the key's name (1 to 64 of A-Z a-z 0-9 . _ -); recorded as the actor")
    create.add_argument(
        "--scopes",
        required=True,
        help=f"comma-separated, among {','.join(SCOPES)} (admin: everything)",
    )
    create.set_defaults(func=cmd_keys_create)
    listing = keys_sub.add_parser(
        "list", help="every key, revoked ones too (no secret)", description="List every API key, revoked ones too."
    )
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser(
        "revoke",
        help="revoke a key (every service refuses it within 5 s)",
        description="Revoke an API key; every service refuses it within 5 s. Revoking it again changes nothing.",
    )
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_keys_revoke)

    grant.add_parser(sub).set_defaults(func=cmd_grant)

    shards_parser = sub.add_parser(
        "shards",
        help="set up N shard databases behind a PL/Proxy database",
        description="Scale out: the same functions on N shard databases behind a PL/Proxy database that routes "
        "every call by player (README, section Scaling out).",
    )
    shards_sub = shards_parser.add_subparsers(dest="shards_command", required=True, metavar="ACTION")
    init = shards_sub.add_parser(
        "init",
        help="migrate every shard and install the proxy (re-runnable)",
        description="Migrate every shard (as `migrate` does), record which partitions each holds (partition p on "
        "shard p mod N, the shards named s0, s1, ... in the order given; a shard keeps what it has recorded), "
        "and (re)install the proxy database: PL/Proxy, the cluster, one function per public function, read-only "
        "views of every shard's tables. Re-run it after every upgrade. Needs the owner (a superuser or a member "
        "of wallet_owner) on every database; the proxy's event sequencer connects to the shards as the login of "
        "the first --shard URL.",
    )
    init.add_argument("--proxy", required=True, metavar="URL", help="the proxy database (PL/Proxy must be installed)")
    init.add_argument(
        "--shard", required=True, action="append", metavar="URL", help="a shard database, in order (repeatable)"
    )
    init.add_argument(
        "--partitions",
        type=int,
        default=64,
        help="partitions, a power of two >= the shards (default 64): a shard can later be split without "
        "rehashing a player (README)",
    )
    init.set_defaults(func=cmd_shards_init)

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
    logs.configure()
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DEV_COMMANDS:
        return run_dev_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, Config.from_env()))
    except psycopg.Error as exc:
        if exc.sqlstate == "WL006":  # an invalid argument: the function's own message names it
            print(f"wallet-service {args.command}: {exc.diag.message_primary}", file=sys.stderr)
            return 2
        if exc.sqlstate == "42501":
            print(
                f"wallet-service {args.command}: permission denied ({exc.diag.message_primary}): this needs the "
                "owner, a superuser or a member of wallet_owner",
                file=sys.stderr,
            )
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
