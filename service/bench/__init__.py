"""`wallet-service bench`: SQL-level (pgbench) and HTTP-level (wrk) load and ledger-growth latency.

Modules: options (CLI arguments), run (the whole run), pgserver (the bench's own PostgreSQL), sqlload
(pgbench), httpload (wrk against `wallet-service serve`), growth (bulk-loaded ledgers and read probes),
report (Markdown and PNG); scripts/ holds the pgbench and wrk scripts.
"""
