"""Every limit of the API, in one place for the Python side.

The SQL side holds the same numbers once, in the functions `_wallet_max_amount()` and
`_wallet_max_id_length()` (migration sql/0003) and the domains built on them; `tests/sql/test_limits.py`
checks that both sides agree, `tests/api/test_openapi.py` that the OpenAPI document states these numbers.
"""

from __future__ import annotations

MAX_AMOUNT = 2**53 - 1  # 9007199254740991: the largest integer every JSON client reads exactly
MAX_ID_LENGTH = 128  # user ids, reference ids, asset codes and operation fields, in characters
HISTORY_DEFAULT_LIMIT = 50  # history entries per page when no limit is given
HISTORY_MAX_LIMIT = 100  # the most history entries one page may ask for
MAX_OFFSET = 2**31 - 1  # a history offset must fit PostgreSQL's integer
MAX_BODY_BYTES = 64 * 1024  # a request body above this is 413 PAYLOAD_TOO_LARGE
