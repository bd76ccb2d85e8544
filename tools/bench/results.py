"""One measured scenario, and latency percentiles."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    level: str  # "SQL", "HTTP" or "ledger"
    scenario: str
    tps: float  # transactions (or requests) per second; 0 for single-client latency probes
    count: int  # transactions / requests / calls measured
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    note: str = ""
    extra: dict = field(default_factory=dict)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


def summarize(latencies_ms: list[float]) -> tuple[float, float, float]:
    values = sorted(latencies_ms)
    return percentile(values, 50), percentile(values, 95), percentile(values, 99)
