"""One torture run: PostgreSQL and the service up, the durability check, the workload with the faults, the
final checks, the summary."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg import sql as psql

from service import schema
from tools.launcher import free_port
from tools.torture import report
from tools.torture.check import check
from tools.torture.durability import check_durability, check_durability_sharded
from tools.torture.faults import Faults, OutageProbe
from tools.torture.options import Options
from tools.torture.processes import DebianPostgres, Postgres, Service, restart_postgres
from tools.torture.records import Stats, log
from tools.torture.workload import Workload

SERVICE_LOGIN = "wallet_service"  # the embedded server trusts its Unix socket: a login without a password
# what the clients do needs: reversals are a scope of their own (purchases, holds, captures and voids are spend)
SCOPES = ("read", "topup", "bonus", "spend", "reverse")


def prepare_database(url: str, run_id: str) -> str:
    """What serve does in its embedded mode, as the torture's own service runs with DATABASE_URL (which never
    migrates): migrate, seed, the service's login; returns the secret of an API key for the run's clients."""
    schema.migrate(url)
    schema.seed(url)
    schema.ensure_app_login(url, SERVICE_LOGIN)
    _, secret = schema.create_key(url, f"torture-{run_id}", list(SCOPES))
    return secret


PROXY_DATABASE = "wallet_proxy"


def shard_database(n: int) -> str:
    return f"wallet_s{n}"


@dataclass
class Target:
    """What the service runs on and the checker reads (superuser URLs): one database, or (sharded) the PL/Proxy
    database in front of the shards; and the secret of the run's API key."""

    url: str
    secret: str
    shards: list[str] = field(default_factory=list)

    @property
    def databases(self) -> list[str]:
        """Sharded: the names of the proxy's and the shards' databases (none otherwise)."""
        return [url.rsplit("/", 1)[1] for url in [self.url, *self.shards]] if self.shards else []

    def durability(self, run_id: str) -> tuple[dict[str, str], list[str]]:
        if self.shards:
            return check_durability_sharded(self.url, self.shards, f"{run_id}-probe")
        return check_durability(self.url, f"{run_id}-probe")


def prepare_sharded(pg: DebianPostgres, run_id: str, shard_count: int, partitions: int) -> Target:
    """The sharded set in pg's cluster: a proxy database and shard_count shard databases (created unless they
    exist), migrated and installed by service.shards.init (re-runnable), seeded through the proxy; the
    service's login (roles are the cluster's: granted on a shard, as wallet_grant_role is no proxy function);
    an API key for the run's clients (through the proxy)."""
    from service import shards

    names = [PROXY_DATABASE, *(shard_database(n) for n in range(shard_count))]
    with psycopg.connect(pg.url, autocommit=True) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                conn.execute(psql.SQL("CREATE DATABASE {}").format(psql.Identifier(name)))
    proxy, shard_urls = pg.url_for(names[0]), [pg.url_for(name) for name in names[1:]]
    shards.init(proxy, shard_urls, partitions)
    schema.seed(proxy)
    schema.ensure_app_login(shard_urls[0], SERVICE_LOGIN)
    _, secret = schema.create_key(proxy, f"torture-{run_id}", list(SCOPES))
    return Target(proxy, secret, shard_urls)


async def run_async(options: Options, pg: Postgres | DebianPostgres, run_dir: Path) -> dict[str, Any]:
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    run_id = f"tt{seed}x{rng.randrange(16**6):06x}"
    stats = Stats()
    started = time.monotonic()

    url = await asyncio.to_thread(pg.start)
    if isinstance(pg, DebianPostgres):
        target = await asyncio.to_thread(prepare_sharded, pg, run_id, options.shards, options.partitions)
    else:
        target = Target(url, await asyncio.to_thread(prepare_database, url, run_id))
    port = options.port or free_port()
    # the service connects as a login holding only wallet_app, as in production
    service = Service(schema.login_url(target.url, SERVICE_LOGIN), port, run_dir / "service.log")
    try:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        headers = {"Authorization": f"Bearer {target.secret}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            await service.start()
            _settings, problems = await asyncio.to_thread(target.durability, run_id)
            for problem in problems:
                stats.violation(f"durability: {problem}")
            workload = Workload(options, rng, run_id, service.base, stats)
            faults = Faults(options, rng, pg, service, stats, target.databases)
            if target.shards and workload.hot + workload.cold:
                faults.probe = OutageProbe(session, service.base, (workload.hot + workload.cold)[0], stats)
            if problems:
                log.error("the server is not durable; not running the workload")
            else:
                log.info(
                    "torture: seed %d, run id %s, %s clients, %s s", seed, run_id, options.clients, options.duration
                )
                fault_task = asyncio.create_task(faults.run())
                clients = [asyncio.create_task(workload.client(session, n)) for n in range(options.clients)]
                await asyncio.sleep(options.duration)
                workload.stop_new.set()
                faults.stop.set()
                await fault_task
                # let pending operations finish their retries against a service and database that stay up
                workload.give_up_at = time.monotonic() + 60
                if not service.running:
                    await service.start()
                await asyncio.gather(*clients)
            load_seconds = time.monotonic() - started
            await restart_postgres(pg)  # up (it is, unless the last fault is still recovering)
            resolution = await check(workload.ops, stats, session, service.base, target.url, run_id, target.shards)
            settings_after, problems_after = await asyncio.to_thread(target.durability, run_id)
            for problem in problems_after:
                stats.violation(f"durability (after the run): {problem}")
            await service.stop()
    finally:
        await service.stop()  # already stopped, unless the run failed

    return report.summarize(
        seed=seed,
        run_id=run_id,
        options=options,
        load_seconds=load_seconds,
        ops=workload.ops,
        stats=stats,
        resolution=resolution,
        service_starts=service.starts,
        crash_recoveries=pg.crash_recoveries(),
        durability=settings_after,
    )


def run(args: argparse.Namespace) -> int:
    options = Options.from_args(args)
    logging.getLogger("service").setLevel(logging.WARNING)
    if options.shards:
        logging.getLogger("yoyo").setLevel(logging.WARNING)  # (every step of migrating each shard)
    scratch = options.data_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="wallet-torture-"))
    os.chmod(run_dir, 0o755)  # the embedded server runs as its own system user
    data_dir = options.data_dir or run_dir / "pgdata"
    pg = DebianPostgres(data_dir) if options.shards else Postgres(data_dir)
    try:
        summary = asyncio.run(run_async(options, pg, run_dir))
    finally:
        pg.stop()
    report.print_summary(summary)
    if options.report:
        report.write_json(summary, options.report)
    if summary["violations"] == 0 and scratch:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        print(f"logs and data kept in {run_dir}", flush=True)
    return 1 if summary["violations"] else 0
