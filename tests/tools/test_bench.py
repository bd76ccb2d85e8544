"""`wallet-service bench` end to end on tiny sizes: its own PostgreSQL, pgbench, wrk against the real
service (one worker, and the top-ups also against `serve --workers 2`), batches of two sizes at both levels, a
small `grant --file`, two small ledgers; the report and the chart come out with plausible, non-zero numbers,
and the ledger those runs wrote (batches and grant included) verifies. (No timing assertions: speed is what
the benchmark reports, not what a test checks.)"""

from __future__ import annotations

import argparse
import re

from tools.bench import run, sqlload
from tools.bench.options import add_arguments


def _rows(markdown: str, section: str) -> list[list[str]]:
    body = markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in body.splitlines()
        if line.startswith("|") and not re.match(r"^\|[-:| ]+\|$", line)
    ][1:]


GRANT_ROWS = 3000
BATCHES = {n: sqlload.batch_scenario(n) for n in (10, 1000)}


def test_bench_writes_report_and_chart(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--duration",
            "2",
            "--rounds",
            "1",
            "--players",
            "50",
            "--scale",
            "1",
            "--sizes",
            "1e3,4e3",
            "--batch-sizes",
            "10,1000",
            "--grant-rows",
            str(GRANT_ROWS),
            "--probe-seconds",
            "0.2",
            "--output",
            str(tmp_path / "bench.md"),
            "--chart",
            str(tmp_path / "bench.png"),
            "--workdir",
            str(tmp_path / "work"),
        ]
    )

    assert run.main(args) == 0

    report = (tmp_path / "bench.md").read_text()
    throughput = _rows(report, "Throughput and latency")
    levels = {(row[0], row[1].split(" (")[0]) for row in throughput}
    assert ("SQL", "tpcb-like") in levels and ("SQL", "top-ups, many players") in levels
    assert ("HTTP", "read-heavy mix") in levels
    # the top-ups on one worker and on two, one row each, side by side
    http_scenarios = [row[1] for row in throughput if row[0] == "HTTP"]
    top_ups = http_scenarios.index("top-ups, many players")
    assert http_scenarios[top_ups + 1] == "top-ups, many players, 2 workers", http_scenarios
    for level in ("SQL", "HTTP"):  # POST /wallets/purchase: 2 assets, 1 of each
        purchase = next(row for row in throughput if row[:2] == [level, "purchases of 2 assets, many players"])
        assert float(purchase[2]) > 0 and int(purchase[7]) > 0 and int(purchase[6]) == 0, purchase
    for level, scenario, tps, p50, p95, p99, errors, count, pg_cpu, service_cpu in throughput:
        assert float(tps) > 0 and int(count) > 0, (level, scenario)
        assert 0 < float(p50) <= float(p95) <= float(p99), (level, scenario)
        assert int(errors) == 0, (level, scenario)
        assert float(pg_cpu) > 0, (level, scenario)  # the bench's own server: its CPU is measured
        if level == "HTTP":
            assert float(service_cpu) > 0, scenario

    growth = _rows(report, "Latency by ledger size")
    probe_rows = growth[: [row[0] for row in growth].index("ledger size")]
    probes = [row[0] for row in probe_rows]
    assert "balance" in probes and "history, last page via cursor" in probes
    for row in probe_rows:
        for cell in row[1:]:
            low, mid, high = (float(x) for x in cell.split(" / "))
            assert 0 < low <= mid <= high
    # the batches, at both levels, and the grant: per posting, beside tpcb-like
    per_posting = {(row[0], row[1].split(":")[0]): row for row in _rows(report, "Batches and grants, per posting")}
    reference = per_posting[("SQL", "tpcb-like (pgbench reference)")]
    assert abs(float(reference[3]) - float(reference[2])) <= 1 and float(reference[3]) > 0 and reference[4] == "1.00"
    written = 0  # postings the batches and the grant made: all of them in the ledger that wallet_verify checks
    for (_level, scenario), row in per_posting.items():
        _, _, calls, postings, times, p50, p99, errors, count, pg_cpu, _ = row
        assert int(errors) == 0 and float(postings) > 0 and float(times) > 0 and float(pg_cpu) > 0, row
        size = next((n for n, name in BATCHES.items() if name == scenario), None)
        if size is not None:
            assert 0 < float(p50) <= float(p99), row
            assert abs(float(postings) - float(calls) * size) <= size, row  # postings/s = calls/s x size
            assert abs(float(times) - float(postings) / float(reference[3])) < 0.01, row
            assert int(count) % size == 0, row
            written += int(count)
    assert {(level, name) for level in ("SQL", "HTTP") for name in BATCHES.values()} <= set(per_posting)
    grant = per_posting[("grant", f"grant --file, {GRANT_ROWS:,} rows (bonuses)")]
    assert int(grant[8]) == GRANT_ROWS and grant[2] == grant[5] == "-", grant
    written += GRANT_ROWS
    # wallet_verify on both loaded ledgers, and on the one the throughput runs wrote (purchases, batches and the
    # grant included: two entries per posting)
    assert report.count("healthy (0 violations)") == 3
    verified = re.search(
        r"\| wallet_verify on the bench players' ledger after the runs \| healthy \(0 violations\) on ([\d,]+) entries",
        report,
    )
    assert verified and int(verified.group(1).replace(",", "")) >= 2 * written, (verified, written)
    assert "| fsync | on |" in report.replace("PostgreSQL fsync", "fsync")
    targets = {row[0]: row[1] for row in _rows(report, "Targets")}
    verdicts = {row[0]: row[2] for row in _rows(report, "Targets")}
    for size, name in BATCHES.items():  # the batches' target, both levels: postings/s >= 3x tpcb-like's tps
        for level in ("SQL", "HTTP"):
            measured = targets[f"{level} {name}: postings/s >= 3x tpcb-like"]
            assert re.fullmatch(rf"\d+\.\d calls/s x {size} = [1-9]\d* postings/s / [1-9]\d* = \d+\.\d\dx", measured)
            ratio_x = float(measured.rsplit(" = ", 1)[1].rstrip("x"))
            assert verdicts[f"{level} {name}: postings/s >= 3x tpcb-like"] == ("met" if ratio_x >= 3 else "NOT met")
    for scenario in ("top-ups, many players", "spends, many players"):  # single postings: >= 0.9x tpcb-like
        measured = targets[f"SQL {scenario} >= 0.9x tpcb-like"]
        single_x = float(measured.rsplit(" = ", 1)[1].rstrip("x"))
        assert verdicts[f"SQL {scenario} >= 0.9x tpcb-like"] == ("met" if single_x >= 0.9 else "NOT met"), measured
    grant_target = targets["grant --file of 10^6 rows within 180 s"]  # fewer rows: the rate, no verdict
    assert re.fullmatch(
        rf"{GRANT_ROWS:,} rows in \d+\.\d s = [1-9]\d* rows/s; 1,000,000 rows at that rate: \d+ s", grant_target
    )
    ratio = targets["SQL purchases of 2 assets vs tpcb-like (reported, no target)"]
    assert re.match(r"[1-9]\d* / [1-9]\d* = \d+\.\d\dx; [1-9]\d* postings/s, PG CPU ", ratio), ratio
    assert float(ratio.split(" = ")[1].split("x")[0]) > 0, ratio

    two = targets["HTTP top-ups: 2 workers vs 1 (reported, no target)"]
    assert re.fullmatch(r"[1-9]\d* / [1-9]\d* = \d+\.\d\dx", two), two
    assert "HTTP >= 0.5x SQL: top-ups, many players, 2 workers" in targets
    assert "| HTTP service | serve --workers 1; top-ups also with --workers 2 |" in report
    # the 2-worker rows really came from two workers (the one-worker service forked none)
    two_log = (tmp_path / "work" / "service-2-workers.log").read_text()
    assert "2 workers, each with its own pool" in two_log
    assert len(re.findall(r"worker \d \(pid \d+\) serving", two_log)) == 2
    assert "worker 1 (pid" not in (tmp_path / "work" / "service.log").read_text()

    png = (tmp_path / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
