"""`wallet-service bench`: the whole benchmark, from an empty machine to docs/benchmarks.md and a PNG.

Order: start (or take) the server, migrate, fund the bench players, pgbench -i the reference database; then
`rounds` rounds, each running every SQL scenario and then every HTTP scenario (the batch scenarios of each
--batch-sizes included) for duration/rounds seconds (interleaving keeps a burst of outside load from landing on
one scenario only); then `wallet-service grant --file` of a --grant-rows CSV into the same ledger; then
wallet_verify() on the ledger those runs wrote (up to --verify-runs-max entries); then the ledger-growth loads
and probes (wallet_verify() on those up to --verify-max entries); then the report.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import psycopg
from tqdm import tqdm

from service import schema
from tools.bench import grants, growth, httpload, pgserver, report, sqlload
from tools.bench.results import Result
from tools.launcher import Serve

SERVICE_LOGIN = "wallet_service"  # the bench's own server: the service connects as this wallet_app login


def _cpu(server: pgserver.BenchServer | None, settle: bool = False) -> float:
    """The bench server's CPU seconds so far (0 on a server given by DATABASE_URL)."""
    if server is None:
        return 0.0
    if settle:
        time.sleep(0.5)  # let the postmaster reap the backends of the clients that just disconnected
    return server.cpu_seconds()


def _statements(url: str, limit: int = 12) -> list[tuple]:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute(
                "SELECT calls, total_exec_time, mean_exec_time, "
                "left(regexp_replace(query, '\\s+', ' ', 'g'), 110) FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "ORDER BY total_exec_time DESC LIMIT %s",
                (limit,),
            ).fetchall()
    except psycopg.Error:
        return []


def _reset_statements(url: str) -> bool:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
        return True
    except psycopg.Error:
        return False  # not preloaded on a server given by DATABASE_URL: the report just lacks that table


def main(args: argparse.Namespace, database_url: str | None = None) -> int:
    started = time.monotonic()
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    logging.getLogger().setLevel(logging.WARNING)  # migrations' INFO lines would break the progress bar
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    batch_sizes = sqlload.batch_sizes(args.batch_sizes)
    grant_rows = int(args.grant_rows)
    http = not args.no_http and httpload.service_available()
    worker_counts = httpload.worker_counts(args.http_workers) if http else []
    per_round = args.duration / args.rounds
    sql_scenarios = {**sqlload.SCENARIOS, **sqlload.batch_scenarios(batch_sizes, args.clients, args.players)}
    http_runs = len(httpload.SCENARIOS) + len(worker_counts) + len(batch_sizes) if http else 0
    steps = (len(sql_scenarios) + http_runs) * args.rounds + 5 + 2 * len(sizes) + (grant_rows > 0)
    bar = tqdm(total=steps, desc="bench", unit="step", dynamic_ncols=True)
    tmp = None
    workdir = args.workdir
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="wallet-bench-")
        workdir = Path(tmp.name)
    server = None if database_url else pgserver.BenchServer(workdir / "pgdata")
    services: dict[int, Serve] = {}  # `serve --workers N` by N: 1, and each of --http-workers
    try:
        bar.set_description("starting PostgreSQL")
        base_url = str(database_url) if server is None else server.start()  # no server: DATABASE_URL given
        wallet_url = base_url if database_url else pgserver.create_database(base_url, "wallet_bench")
        tpcb_url = pgserver.create_database(base_url, "wallet_bench_tpcb")
        bar.update()
        bar.set_description("migrating and funding players")
        schema.migrate(wallet_url)
        sqlload.prepare_wallets(wallet_url, args.players)
        bar.update()
        bar.set_description("pgbench -i")
        sqlload.prepare_tpcb(tpcb_url, args.scale)
        bar.update()
        key = ""
        if http:
            bar.set_description("starting wallet-service serve")
            # as in production: an API key with the scopes the scenarios need, and (on the bench's own server,
            # which trusts local connections) a login holding only wallet_app
            _, key = schema.create_key(wallet_url, f"bench-{time.time_ns()}", ["read", "topup", "spend"])
            service_url = wallet_url
            if server is not None:
                schema.ensure_app_login(wallet_url, SERVICE_LOGIN)
                service_url = schema.login_url(wallet_url, SERVICE_LOGIN)
            env = {**os.environ, "DATABASE_URL": service_url}
            for workers in (1, *worker_counts):
                log = workdir / ("service.log" if workers == 1 else f"service-{workers}-workers.log")
                services[workers] = Serve(log, env=env, args=["--workers", str(workers)]).start(timeout=60)
        statements_on = _reset_statements(wallet_url)

        sql_tallies = {name: sqlload.Tally() for name in sqlload.SCENARIOS}
        sql_tallies |= {sqlload.batch_scenario(n): sqlload.Tally(batch=n) for n in batch_sizes}
        # (scenario, wrk script, service): every scenario on one worker, the top-ups on N workers right after
        http_runs_per_round: list[tuple[str, str, Serve]] = []
        http_tallies: dict[str, httpload.Tally] = {}
        for name, wrk_script in httpload.SCENARIOS.items() if services else ():
            http_runs_per_round.append((name, wrk_script, services[1]))
            http_tallies[name] = httpload.Tally()
            if name == httpload.WORKERS_SCENARIO:
                for workers in worker_counts:
                    scenario = httpload.workers_scenario(workers)
                    http_runs_per_round.append((scenario, wrk_script, services[workers]))
                    http_tallies[scenario] = httpload.Tally(workers=workers)
        for n in batch_sizes if services else ():  # POST /wallets/batch, one worker
            http_runs_per_round.append((sqlload.batch_scenario(n), httpload.BATCH_SCRIPT, services[1]))
            http_tallies[sqlload.batch_scenario(n)] = httpload.Tally(batch=n)
        statements: list[tuple] = []
        for round_no in range(args.rounds):
            for name, script in sql_scenarios.items():
                bar.set_description(f"round {round_no + 1}/{args.rounds} SQL {name[:30]}")
                url = tpcb_url if name == sqlload.REFERENCE else wallet_url
                cpu = _cpu(server)
                sqlload.run_pgbench(url, script, args.clients, per_round, args.players, sql_tallies[name])
                sql_tallies[name].server_cpu += _cpu(server, settle=True) - cpu
                bar.update()
            if round_no == 0:  # the SQL runs only: the HTTP runs that follow call the same functions
                statements = _statements(wallet_url) if statements_on else []
            for name, wrk_script, service in http_runs_per_round:
                bar.set_description(f"round {round_no + 1}/{args.rounds} HTTP {name[:30]}")
                # the service's CPU: the process's and (serve --workers N) its workers'
                cpu, service_cpu = _cpu(server), pgserver.process_cpu_seconds(service.pid, children=True)
                httpload.run_wrk(
                    service.origin, wrk_script, args.clients, per_round, args.players, key, http_tallies[name]
                )
                http_tallies[name].server_cpu += _cpu(server, settle=True) - cpu
                http_tallies[name].service_cpu += pgserver.process_cpu_seconds(service.pid, children=True) - service_cpu
                bar.update()
        for service in services.values():
            service.stop(timeout=15)
        services = {}
        grant_result = None
        if grant_rows > 0:
            bar.set_description(f"grant --file of {grant_rows:,} rows")
            csv_path, prefix = workdir / "grant.csv", f"bench-grant-{time.time_ns()}"
            grants.write_csv(csv_path, grant_rows, args.players, prefix)
            cpu = _cpu(server)
            grant_result = grants.run_grant(wallet_url, csv_path, grant_rows, prefix)
            if server is not None:
                grant_result.extra["server_cpu_ms"] = 1000 * (_cpu(server, settle=True) - cpu) / grant_rows
            csv_path.unlink()
            bar.update()
        bar.set_description("wallet_verify on the bench players' ledger")
        ledger_check = sqlload.verify(wallet_url, args.verify_runs_max)
        bar.update()
        results: list[Result] = [t.result(name) for name, t in sql_tallies.items()]
        results += [t.result(name) for name, t in http_tallies.items() if t.requests]
        if grant_result is not None:
            results.append(grant_result)

        growth_results: list[Result] = []
        growth_info: dict[str, dict] = {}
        if sizes:
            bar.set_description("ledger growth: empty database")
            growth_url = pgserver.create_database(base_url, "wallet_bench_growth")
            schema.migrate(growth_url)
            ledger = growth.Ledger(growth_url, players=args.players)
            for size in sizes:
                bar.set_description(f"ledger growth: loading {size:,} entries")
                t0 = time.monotonic()
                with tqdm(
                    total=size - 2 * ledger.transactions,
                    desc=f"entries to {size:,}",
                    unit="entry",
                    unit_scale=True,
                    leave=False,
                    dynamic_ncols=True,
                ) as load_bar:
                    ledger.grow(size, load_bar.update)
                info = {"load_s": time.monotonic() - t0, "whale": f"{ledger.transactions // 10:,}"}
                if size <= args.verify_max:
                    bar.set_description(f"ledger growth: wallet_verify at {size:,}")
                    violations = ledger.verify()
                    info["verify"] = "healthy (0 violations)" if not violations else f"{len(violations)} VIOLATIONS"
                bar.update()
                bar.set_description(f"ledger growth: probes at {size:,}")
                growth_results += ledger.measure(str(size), budget_s=args.probe_seconds)
                growth_info[str(size)] = info
                bar.update()
        bar.set_description("report")
        info = {
            "command": "wallet-service bench "
            + " ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in (
                    ("duration", args.duration),
                    ("rounds", args.rounds),
                    ("clients", args.clients),
                    ("sizes", args.sizes or "''"),
                    ("batch-sizes", args.batch_sizes or "''"),
                    ("grant-rows", grant_rows),
                    ("http-workers", args.http_workers or "''"),
                )
            ),
            "elapsed": time.monotonic() - started,
            "machine": report.machine() | {"load average at start": load_at_start},
            "server": {
                ("PostgreSQL " + k if k != "version" else "PostgreSQL"): v
                for k, v in pgserver.describe(wallet_url).items()
            }
            | {
                "server": "started by the bench (Debian binaries, run as postgres)"
                if server
                else "given by DATABASE_URL"
            },
            "tools": {
                "pgbench": report.tool_version([sqlload.pgbench_binary(), "--version"]),
                "wrk": report.tool_version(["wrk", "--version"]) if http else "not run",
            },
            "run": {
                "clients": args.clients,
                "seconds per scenario": args.duration,
                "rounds": args.rounds,
                "players": args.players,
                "HTTP service": "serve --workers 1"
                + "".join(f"; top-ups also with --workers {n}" for n in worker_counts),
                "tpcb-like scale": args.scale,
                "batch sizes (operations per call / request)": ", ".join(map(str, batch_sizes)) or "none",
                "grant --file": f"{grant_rows:,} rows over the bench players" if grant_rows else "not run",
                "load average at end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                "wallet_verify on the bench players' ledger after the runs": ledger_check,
            },
            "growth": growth_info,
            "statements": statements,
        }
        if args.chart:
            report.chart(results, growth_results, args.chart)
            info["chart"] = os.path.relpath(args.chart.resolve(), args.output.resolve().parent)
        previous = args.output.read_text() if args.output.exists() else None
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report.markdown(results, growth_results, info, previous))
        bar.update(bar.total - bar.n)
        bar.close()
        print(f"wrote {args.output}" + (f" and {args.chart}" if args.chart else ""))
        for target, measured, verdict in report.targets(results, growth_results):
            print(f"{verdict:8} {target}: {measured}")
        return 0
    finally:
        bar.close()
        for service in services.values():
            service.stop(timeout=15)
        if server is not None:
            server.stop()
        if tmp is not None:
            tmp.cleanup()
