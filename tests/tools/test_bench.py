"""`wallet-service bench` end to end on tiny sizes: its own PostgreSQL, pgbench, wrk against the real
service, two small ledgers; the report and the chart come out with plausible, non-zero numbers.
(No timing assertions: speed is what the benchmark reports, not what a test checks.)"""

from __future__ import annotations

import argparse
import re

from tools.bench import run
from tools.bench.options import add_arguments


def _rows(markdown: str, section: str) -> list[list[str]]:
    body = markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in body.splitlines()
        if line.startswith("|") and not re.match(r"^\|[-:| ]+\|$", line)
    ][1:]


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
    # wallet_verify on both loaded ledgers, and on the one the throughput runs wrote (purchases included)
    assert report.count("healthy (0 violations)") == 3
    assert "| fsync | on |" in report.replace("PostgreSQL fsync", "fsync")
    targets = {row[0]: row[1] for row in _rows(report, "Targets")}
    ratio = targets["SQL purchases of 2 assets vs tpcb-like (reported, no target)"]
    assert re.match(r"[1-9]\d* / [1-9]\d* = \d+\.\d\dx; [1-9]\d* postings/s, PG CPU ", ratio), ratio
    assert float(ratio.split(" = ")[1].split("x")[0]) > 0, ratio

    png = (tmp_path / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
