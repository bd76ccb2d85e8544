"""Every limit of the API, in one place for the Python side.

The SQL side holds the same numbers once, in the functions `_wallet_max_amount()`, `_wallet_max_id_length()`,
`_wallet_max_page()` (migration sql/0003), `_wallet_max_hold_seconds()`, `_wallet_default_hold_seconds()` and
`_wallet_max_price_legs()` (migration sql/0006) and the domains built on them; `tests/sql/test_limits.py`
checks that both sides agree, `tests/api/test_openapi.py` that the OpenAPI document states these numbers.
"""

from __future__ import annotations

MAX_AMOUNT = 2**53 - 1  # 9007199254740991: the largest integer every JSON client reads exactly
MAX_ID_LENGTH = 128  # user ids, reference ids, asset codes and operation fields, in characters
HISTORY_DEFAULT_LIMIT = 50  # history entries per page when no limit is given
HISTORY_MAX_LIMIT = 100  # the most history entries one page may ask for
MAX_OFFSET = 2**31 - 1  # a history offset must fit PostgreSQL's integer
MAX_BODY_BYTES = 64 * 1024  # a request body above this is 413 PAYLOAD_TOO_LARGE

# ---- batches (service/batch.py: POST /wallets/batch)
MAX_BATCH_BODY_BYTES = 1024 * 1024  # that route's body limit instead of MAX_BODY_BYTES (413 PAYLOAD_TOO_LARGE)
MAX_BATCH_OPERATIONS = 1000  # operations one HTTP batch holds: 1 to this many
MAX_BATCH_SIZE = 10_000  # operations one call of wallet_post_batch takes (_wallet_max_batch(); grant --batch-size)

# ---- economy operations (purchases and holds)
MAX_PRICE_LEGS = 3  # assets one purchase debits at most (its price lists 1 to this many distinct assets)
MAX_HOLD_SECONDS = 24 * 60 * 60  # a hold's expires_in: 1 to this many seconds (a day)
DEFAULT_HOLD_SECONDS = 10 * 60  # a hold's expires_in when the request gives none

# ---- hostile input (service/validation.py, service/cursor.py)
MAX_METADATA_DEPTH = 16  # metadata nests objects and arrays at most this deep (the metadata object is level 1)
MAX_METADATA_ITEMS = 1000  # members and array elements in metadata, counted at every depth
MAX_CURSOR_LENGTH = 64  # a history cursor longer than this is not one the service returned (they are ~30)
BODY_TIMEOUT_SECONDS = 10.0  # the whole request body must arrive within this, else 408 REQUEST_TIMEOUT

# ---- connections (service/listener.py)
MAX_CONNECTIONS = 1000  # open client connections at most; beyond, the oldest idle one is closed (or 503)
LISTEN_BACKLOG = 128  # connections the kernel queues until the listener accepts them
FD_RESERVE = 64  # descriptors kept for all but client connections (pool, logs, event loop): the listener
# holds at most min(MAX_CONNECTIONS, open-file limit - FD_RESERVE) client sockets, every one counted
KEEPALIVE_TIMEOUT_SECONDS = 75.0  # a connection with no request in progress is closed after this (from its
# opening or its last response), which also bounds how long a request's line and headers may take to arrive

# ---- one stuck wallet costs only its own requests (service/database.py)
WALLET_CONCURRENCY = 2  # database calls of one wallet (player, asset) at once
WALLET_QUEUE_LIMIT = 32  # requests of one wallet waiting for a slot; more are 503 CONCURRENCY_CONFLICT at once
WALLET_DEADLINE_SECONDS = 8.0  # a posting's whole time in the database layer (waits, attempts, retries); then 503
STATEMENT_TIMEOUT_MS = 5000  # statement_timeout of the pool's connections (above the 2 s lock_timeout)
