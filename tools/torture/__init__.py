"""`wallet-service torture`: a bank-style workload with faults injected, checked against a model.

The tool starts its own PostgreSQL (the embedded one, fsync on, in a scratch data directory) and the service
as a subprocess, then drives the HTTP API with many concurrent clients: random top-ups, bonuses and spends
over a few hot players (heavy contention on their wallets) and many cold ones, including spends that must
fail for lack of funds. Clients retry like real ones: the same reference id again after a timeout, a
connection reset or a 503, sometimes while the first attempt is still in flight. Meanwhile it kills the
service (kill -9, restart), kills the postmaster (kill -9, restart = crash recovery) and terminates random
database sessions.

Every answer is recorded. At the end every acknowledged transaction must exist exactly once with the
acknowledged amount and balance, every retried key must resolve to one transaction, the balances must equal
a model replayed from the committed operations (operations whose outcome the client never learned are
looked up by reference id), no balance may be negative and wallet_verify() must be empty. Durability is
checked, not assumed: fsync and synchronous_commit (also inside a wallet transaction) must be on.
Exit status 1 on any violation.

Modules: options (the command line), records (what the clients sent and heard: Op, Stats), processes (the
embedded PostgreSQL and the service, killed and restarted), durability (the settings check), workload (the
clients, their operations and retries), faults (kills, restarts, backend terminations), check (the final
checks against the ledger and the model), report (the summary, printed and as JSON), run (one whole run).
"""

from __future__ import annotations


def main(argv: list[str], prog: str = "wallet-service torture") -> int:
    from tools.torture.options import build_parser
    from tools.torture.run import run

    return run(build_parser(prog).parse_args(argv))
