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
from pathlib import Path
from typing import Any

import aiohttp

from service import schema
from tools.launcher import free_port
from tools.torture import report
from tools.torture.check import check
from tools.torture.durability import check_durability
from tools.torture.faults import Faults
from tools.torture.options import Options
from tools.torture.processes import Postgres, Service, crash_recoveries, restart_postgres
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


async def run_async(options: Options, pg: Postgres, run_dir: Path) -> dict[str, Any]:
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    run_id = f"tt{seed}x{rng.randrange(16**6):06x}"
    stats = Stats()
    started = time.monotonic()

    url = await asyncio.to_thread(pg.start)
    secret = await asyncio.to_thread(prepare_database, url, run_id)
    port = options.port or free_port()
    # the service connects as a login holding only wallet_app, as in production
    service = Service(schema.login_url(url, SERVICE_LOGIN), port, run_dir / "service.log")
    try:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            await service.start()
            _settings, problems = await asyncio.to_thread(check_durability, url, f"{run_id}-probe")
            for problem in problems:
                stats.violation(f"durability: {problem}")
            workload = Workload(options, rng, run_id, service.base, stats)
            faults = Faults(options, rng, pg, service, stats)
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
            resolution = await check(workload.ops, stats, session, service.base, pg.url, run_id)
            settings_after, problems_after = await asyncio.to_thread(check_durability, url, f"{run_id}-probe")
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
        crash_recoveries=crash_recoveries(pg.data_dir),
        durability=settings_after,
    )


def run(args: argparse.Namespace) -> int:
    options = Options.from_args(args)
    logging.getLogger("service").setLevel(logging.WARNING)
    scratch = options.data_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="wallet-torture-"))
    os.chmod(run_dir, 0o755)  # the embedded server runs as its own system user
    pg = Postgres(options.data_dir or run_dir / "pgdata")
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
