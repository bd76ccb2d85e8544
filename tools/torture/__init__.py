"""`wallet-service torture`: a bank-style workload with faults injected, checked against a model.

The tool starts its own PostgreSQL (the embedded one, fsync on, in a scratch data directory) and the service
as a subprocess, then drives the HTTP API with many concurrent clients: random top-ups, bonuses and spends
over a few hot players (heavy contention on their wallets) and many cold ones, including spends that must fail
for lack of funds; purchases of two assets at once (the price listed in either order); reversals of
acknowledged spends, purchases, top-ups and bonuses, whole or in part, often by two or three clients at once
with different keys on one original; holds that expire after 1 to 3 seconds, captured (whole or in part) or
voided soon, or left to expire while the client still tries to capture them; batches (POST /wallets/batch) of
top-ups, bonuses and spends, some invalid, some sending again a key of an earlier posting or of an earlier
item of the same batch (the same request: a replay; another amount: a conflict). Clients retry like real ones:
the same reference id again after a timeout, a connection reset or a 503 (a batch: the same request again,
every key as before), sometimes while the first attempt is still in flight. Meanwhile it kills the service
(kill -9, restart), kills the postmaster (kill -9, restart = crash recovery) and terminates random database
sessions.

Every answer is recorded and judged as it arrives (a capture must not succeed once its hold has expired, an
"expired" answer must not come before expires_at, each item of a batch is judged as its single route's answer
would be, a batch's postings to one wallet continue each other in request order, ...). At the end every
acknowledged operation must exist exactly once as acknowledged (a purchase with all its legs, a reversal with
its original, a capture as the CAPTURE transaction under its hold's reference id, a hold in GET
/holds/{reference_id} in the acknowledged state or a later legal one), every retried key must resolve to one
transaction, operations whose outcome the client never learned are looked up by reference id (GET
/transactions/{ref}, GET /holds/{ref}), the reversals of an original never exceed it, no hold is captured
after its expiry nor beyond its amount, the balances must equal a model replayed from the committed entries,
available (balance minus active holds) never went negative at any point of any wallet's history, no balance
may be negative and wallet_verify() must be empty. Durability is checked, not assumed: fsync and
synchronous_commit (also inside a wallet transaction) must be on. Exit status 1 on any violation.

Sharded (--shards N): the same workload and checks against a PL/Proxy database in front of N shard databases
(service/shards.py), all in one cluster of Debian's PostgreSQL run as the postgres user (it has PL/Proxy; the
package is installed if missing), the service on the proxy. The postmaster kill takes every database down at
once; the first outage, and every long one, is probed: GET /health and a balance read must answer 503 while
the cluster is down, and the service must answer from the ledger again soon after the restart. Terminated
sessions are those of one database at a time: the service's on the proxy, or PL/Proxy's on a shard. The
checker reads each shard directly (each player lives on one; a reference id, hold or wallet on two shards is
a violation; system wallets are per shard and no check sums them), calls wallet_verify() through the proxy
(it checks every shard), and counts any 500 answer as a violation (the proxy raises what it cannot map as an
internal error). Durability is checked through the proxy and on each shard (a probe rolled back there).

Modules: options (the command line), records (what the clients sent and heard: Op, Batch, Stats), processes
(the embedded PostgreSQL or, sharded, Debian's, and the service, killed and restarted), durability (the
settings check), workload (the clients, their operations and retries), faults (kills, restarts, backend
terminations, outage probes), check (the final checks against the ledger and the model), report (the summary,
printed and as JSON), run (one whole run).
"""

from __future__ import annotations


def main(argv: list[str], prog: str = "wallet-service torture") -> int:
    from tools.torture.options import build_parser
    from tools.torture.run import run

    return run(build_parser(prog).parse_args(argv))
