"""The run's summary: a dict (also written as JSON with --report) and its printed form."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tools.torture.check import Resolution
from tools.torture.options import Options
from tools.torture.records import Op, Stats

FAULT_KINDS = ("service kill -9", "postgres kill -9", "pg_terminate_backend")


def summarize(
    *,
    seed: int,
    run_id: str,
    options: Options,
    load_seconds: float,
    ops: dict[str, Op],
    stats: Stats,
    resolution: Resolution,
    service_starts: int,
    crash_recoveries: int,
    durability: dict[str, str],
) -> dict[str, Any]:
    acked = [op for op in ops.values() if op.acks]
    actions = [a for op in ops.values() for a in op.actions]

    def acknowledged(kind: str) -> int:
        return sum(1 for op in [*ops.values(), *actions] if op.kind == kind and op.acks)

    def answered(kind: str, code: str) -> int:
        return sum(1 for op in [*ops.values(), *actions] if op.kind == kind and code in op.codes())

    economy = {
        "purchases_acknowledged": acknowledged("purchase"),
        "reversals_acknowledged": acknowledged("reverse"),
        "reversals_refused_exceeding_original": answered("reverse", "REVERSAL_EXCEEDS_ORIGINAL"),
        "reversals_refused_insufficient_funds": answered("reverse", "INSUFFICIENT_FUNDS"),
        "originals_reversed_concurrently": stats.concurrent_reversals,
        "holds_acknowledged": acknowledged("hold"),
        "captures_acknowledged": acknowledged("capture"),
        "voids_acknowledged": sum(
            1 for a in actions if a.kind == "void" and a.acks and a.acks[0].get("status") == "VOIDED"
        ),
        "voids_answered_expired": sum(
            1 for a in actions if a.kind == "void" and a.acks and a.acks[0].get("status") == "EXPIRED"
        ),
        "captures_refused_expired": answered("capture", "HOLD_EXPIRED"),
        "captures_tried_after_expiry": sum(1 for a in actions if a.kind == "capture" and a.after_expiry),
        "holds_by_end_state": dict(sorted(resolution.holds.items())),
        "holds_expired": resolution.holds.get("EXPIRED", 0),
    }
    batched = [op for op in ops.values() if op.batch is not None]
    b = stats.batches
    batches = {
        "sent": b["batches"],
        "answered": b["answered"],
        "retried": b["retried"],
        "items": b["items"],
        "operations": len(batched),
        "operations_acknowledged": sum(1 for op in batched if op.acks),
        "operations_refused": sum(1 for op in batched if not op.acks and op.codes()),
        "invalid_operations_refused": sum(1 for op in batched if op.invalid and "VALIDATION_ERROR" in op.codes()),
        "replays_in_batch": b["replays_in_batch"],
        "conflicts_in_batch": b["conflicts_in_batch"],
        "replays_of_earlier": b["replays_of_earlier"],
        "conflicts_of_earlier": b["conflicts_of_earlier"],
        "postings_checked_in_order": b["postings_checked_in_order"],
    }
    return {
        "seed": seed,
        "run_id": run_id,
        "command": "wallet-service " + " ".join(sys.argv[1:]),
        "duration_seconds": round(load_seconds, 1),
        "operations_per_second": round(sum(stats.operations.values()) / max(options.duration, 1e-9)),
        "clients": options.clients,
        "hot_players": options.hot_players,
        "cold_players": options.cold_players,
        "operations": sum(stats.operations.values()),
        "operations_by_kind": dict(stats.operations),
        "attempts": stats.attempts,
        "retries": stats.retries,
        "abandoned": stats.abandoned,
        "overlapping_sends": stats.overlapping_sends,
        "answers": dict(sorted(stats.answers.items())),
        "faults": {kind: stats.faults.get(kind, 0) for kind in FAULT_KINDS},
        "terminated_sessions": stats.terminated_sessions,
        "shards": options.shards,
        "players_by_shard": resolution.players_by_shard,
        "terminated_sessions_by_database": dict(sorted(stats.terminated_by_database.items())),
        "outage_probes": dict(sorted(stats.outage_probes.items())),
        "recovery_seconds": stats.recovery_seconds,
        "service_starts": service_starts,
        "crash_recoveries": crash_recoveries,
        "acknowledged": len(acked),
        "acknowledged_as_replay": sum(1 for op in acked if op.ack_statuses[0] == 200),
        "refused_insufficient_funds": sum(
            1 for op in ops.values() if not op.acks and op.answers and op.answers[-1][1] == "INSUFFICIENT_FUNDS"
        ),
        "refused_wallet_not_found": sum(
            1 for op in ops.values() if not op.acks and op.answers and op.answers[-1][1] == "WALLET_NOT_FOUND"
        ),
        "retried_keys": sum(1 for op in ops.values() if len(op.answers) > 1),
        "replays_checked": stats.replays_checked,
        "conflicts_checked": stats.conflicts_checked,
        "unknown_outcome": resolution.unknown,
        "unknown_outcome_committed": resolution.unknown_committed,
        "unknown_outcome_not_committed": resolution.unknown_not_committed,
        "refused_then_committed_by_an_earlier_attempt": resolution.late_commits,
        "economy": economy,
        "batches": batches,
        "durability": durability,
        "violations": len(stats.violations),
        "violation_examples": stats.violations[:20],
    }


def print_summary(s: dict[str, Any]) -> None:
    f, e, b = s["faults"], s["economy"], s["batches"]
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(s["operations_by_kind"].items()))
    lines = [
        f"command:               {s['command']}",
        f"torture: seed {s['seed']}, run {s['run_id']}: {s['duration_seconds']} s, {s['clients']} clients, "
        f"{s['hot_players']} hot + {s['cold_players']} cold players",
        f"operations:            {s['operations']} ({by_kind}; {s['operations_per_second']}/s)",
        f"attempts:              {s['attempts']} (retries {s['retries']}, overlapping double sends "
        f"{s['overlapping_sends']}, keys sent more than once {s['retried_keys']}, abandoned by the client "
        f"{s['abandoned']})",
        f"answers:               {', '.join(f'{k}: {v}' for k, v in s['answers'].items())}",
        f"faults injected:       service kill -9: {f['service kill -9']}, postgres kill -9: "
        f"{f['postgres kill -9']}, pg_terminate_backend: {f['pg_terminate_backend']} "
        f"({s['terminated_sessions']} sessions); crash recoveries in the PostgreSQL log: {s['crash_recoveries']}",
    ]
    if s["shards"]:
        by_db = ", ".join(f"{k} {v}" for k, v in s["terminated_sessions_by_database"].items())
        players = ", ".join(f"{k} {v}" for k, v in s["players_by_shard"].items())
        lines.append(
            f"sharded:               PL/Proxy in front of {s['shards']} shards (players with a wallet: {players}); "
            f"sessions terminated by database: {by_db}; while the cluster was down: "
            f"{', '.join(f'{k}: {v}' for k, v in s['outage_probes'].items()) or 'not probed'}; answered again "
            f"{', '.join(f'{x} s' for x in s['recovery_seconds']) or '-'} after each probed restart"
        )
    lines += [
        f"acknowledged:          {s['acknowledged']} (first acknowledgement was a replay: "
        f"{s['acknowledged_as_replay']})",
        f"refused:               insufficient funds {s['refused_insufficient_funds']}, wallet not found "
        f"{s['refused_wallet_not_found']}",
        f"replays:               {s['replays_checked']} checked (same transaction, same balance)",
        f"conflicts:             {s['conflicts_checked']} checked (409 naming the original transaction)",
        f"unknown outcome:       {s['unknown_outcome']} resolved by reference id ({s['unknown_outcome_committed']} "
        f"committed, {s['unknown_outcome_not_committed']} not); refused but committed by an earlier attempt: "
        f"{s['refused_then_committed_by_an_earlier_attempt']}",
        f"purchases:             {e['purchases_acknowledged']} acknowledged (2 assets each)",
        f"reversals:             {e['reversals_acknowledged']} acknowledged; refused: exceeding the original "
        f"{e['reversals_refused_exceeding_original']}, chargeback of spent credits "
        f"{e['reversals_refused_insufficient_funds']}; originals reversed by several clients at once "
        f"{e['originals_reversed_concurrently']}",
        f"holds:                 {e['holds_acknowledged']} acknowledged; captures {e['captures_acknowledged']}, voids "
        f"{e['voids_acknowledged']} (answered EXPIRED {e['voids_answered_expired']}), captures refused as expired "
        f"{e['captures_refused_expired']} (tried after expiry {e['captures_tried_after_expiry']}); end states "
        f"{', '.join(f'{k} {v}' for k, v in e['holds_by_end_state'].items())}",
        f"batches:               {b['sent']} sent ({b['answered']} answers, retried {b['retried']}), "
        f"{b['items']} items: {b['operations']} new operations ({b['operations_acknowledged']} acknowledged, "
        f"{b['operations_refused']} refused, {b['invalid_operations_refused']} of them invalid); keys sent "
        f"again in the same batch: {b['replays_in_batch']} replays, {b['conflicts_in_batch']} conflicts; of "
        f"earlier postings: {b['replays_of_earlier']} replays, {b['conflicts_of_earlier']} conflicts; "
        f"postings checked in request order {b['postings_checked_in_order']}",
        f"durability:            {', '.join(f'{k}={v}' for k, v in s['durability'].items())}",
        f"violations:            {s['violations']}",
    ]
    lines += [f"  {v}" for v in s["violation_examples"]]
    print("\n".join(lines), flush=True)


def write_json(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2, default=str))
