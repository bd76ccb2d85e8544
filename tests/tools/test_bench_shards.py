"""tools/bench/shards.py end to end on tiny sizes: three clusters of its own, the proxy installed over two
shards, every scenario for 2 rounds of 1 s; the JSON has every scenario's numbers, each posted (or was
refused) something and had no unexpected error. (No timing assertions: speed is what the benchmark reports.)"""

from __future__ import annotations

import json

from tools.bench import shards


def test_bench_shards_runs_every_scenario(tmp_path):
    output = tmp_path / "shards.json"

    shards.main(["--duration", "1", "--rounds", "2", "--players", "200", "--output", str(output)])

    result = json.loads(output.read_text())
    assert set(result["scenarios"]) == {s.name for s in shards.SCENARIOS}
    for name, scenario in result["scenarios"].items():
        assert scenario["calls"] > 0 and scenario["median"] > 0, name
        assert scenario["unexpected_errors"] == 0, (name, scenario["first_error"])
        assert len(scenario["rounds"]) == 2, name
        assert set(scenario["cpu_ms_per_call"]) == {"proxy", "shards", "s0", "s1", "client"}, name
        assert scenario["cpu_ms_per_call"]["shards"] > 0, name  # every scenario runs on a shard
    for name in ("topup_proxy", "refused_proxy", "refused_proxy_raw"):
        assert result["scenarios"][name]["cpu_ms_per_call"]["proxy"] > 0, name
    assert result["players"]["s0 (home)"] > 0
    assert all(value > 0 for value in result["estimate_inputs"].values())
    directory = result["key_directory"]  # every proxied posting claimed a key of its own, refused or not
    assert directory["rows on the shards at the end"] == directory["funding + proxied top-ups + proxied refused spends"]
