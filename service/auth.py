"""Who may call what: API keys (`Authorization: Bearer <secret>`), the scope each route needs, and the
per-process cache that keeps the key lookup off the hot path.

- Every route needs a key except the open ones (OPEN: health, the OpenAPI document, the docs page and its
  assets); the scope a route needs is in SCOPES, by route name (service/app.py names every route after its
  operationId). A route in ANY_SCOPE is opened by any one of its scopes (POST /wallets/batch: topup, bonus or
  spend; each operation in it then needs its own scope, checked by service/batch.py with request[API_KEY]);
  a key with none of them is 403 naming the first. A route in no table needs `admin`: a route added without a
  scope is closed, not open.
- An unknown route (404 NOT_FOUND) or a method the route does not have (405 METHOD_NOT_ALLOWED) is answered
  before any key is looked at: the route table is public anyway (GET /openapi.json), and such a request never
  costs a database call.
- No key, another scheme, a malformed, unknown or revoked key: 401 UNAUTHENTICATED with
  `WWW-Authenticate: Bearer`. A key without the route's scope (and without `admin`): 403 FORBIDDEN with
  details.required_scope. Otherwise the key's name is request[ACTOR], which the postings record as their actor.
- The secret is never logged, never compared and never sent to the database: only its SHA-256 digest is
  (the stored form, see wallet_key_create), so no comparison can leak anything about the secret by its timing.
- KeyCache: an active key is remembered for TTL_SECONDS (a revoked key is refused within that time), an
  unknown or revoked one for as long (a client repeating a bad key costs one lookup per TTL). Both maps are
  bounded (least recently used entries go first). Lookups of one digest in flight at once share one query;
  digests never seen active go through at most MAX_UNKNOWN_LOOKUPS queries at a time, so a flood of random
  keys holds at most that many pooled connections, while a known key's refresh never waits behind them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from service.api_errors import ApiError
from service.appkeys import ACTOR
from service.database import fetch
from service.schema import key_hash as digest  # SHA-256 of the secret's UTF-8 bytes, as api_keys stores it

TTL_SECONDS = 2.0  # how long an answer of wallet_authenticate is reused (revocation takes effect within this)
MAX_ACTIVE_KEYS = 1_000  # active keys remembered per process
MAX_REFUSED_KEYS = 10_000  # unknown or revoked digests remembered per process
MAX_UNKNOWN_LOOKUPS = 4  # database lookups of never-seen digests at once

ADMIN = "admin"  # the scope that satisfies every other
# route name (service/app.py) -> the scope it needs
SCOPES: dict[str, str] = {
    "getBalance": "read",
    "getHistory": "read",
    "getTransaction": "read",
    "getHold": "read",
    "getEvents": "read",
    "topup": "topup",
    "bonus": "bonus",
    "spend": "spend",
    "purchase": "spend",
    "hold": "spend",
    "capture": "spend",
    "void": "spend",
    "reverse": "reverse",
}
# route name -> the scopes any one of which opens it (the first is the one its 403 names); each operation of
# a batch needs its own scope all the same (service/batch.py answers a 403 for that operation alone)
ANY_SCOPE: dict[str, tuple[str, ...]] = {
    "postBatch": ("topup", "bonus", "spend"),
}
OPEN: frozenset[str] = frozenset({"health", "openapi", "docs", "docsAsset", "metrics"})

# what wallet_key_create hands out: anything else is refused without a database call
SECRET_FORMAT = re.compile(r"wsk_[0-9a-f]{64}")
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+) *")


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes


API_KEY = web.RequestKey("api_key", ApiKey) if hasattr(web, "RequestKey") else "api_key"  # the request's key


def required_scope(route_name: str | None) -> str | None:
    """The scope a route needs (the first of an ANY_SCOPE route's); None for an open route; admin for a route
    no table names."""
    if route_name in OPEN:
        return None
    if route_name in ANY_SCOPE:
        return ANY_SCOPE[route_name][0]
    return SCOPES.get(route_name or "", ADMIN)


Query = Callable[[bytes], Awaitable["ApiKey | None"]]


@dataclass
class _Entry:
    expires: float
    key: ApiKey | None


class KeyCache:
    """wallet_authenticate's answers, per process (see the module docstring)."""

    def __init__(
        self,
        ttl: float = TTL_SECONDS,
        max_active: int = MAX_ACTIVE_KEYS,
        max_refused: int = MAX_REFUSED_KEYS,
        max_unknown_lookups: int = MAX_UNKNOWN_LOOKUPS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_active, self.max_refused = max_active, max_refused
        self._clock = clock
        # an active key stays here after it expires (until evicted): its refresh skips the unknown-key limit
        self._active: OrderedDict[bytes, _Entry] = OrderedDict()
        self._refused: OrderedDict[bytes, float] = OrderedDict()  # digest -> expiry
        self._pending: dict[bytes, asyncio.Task[ApiKey | None]] = {}
        self._unknown = asyncio.Semaphore(max_unknown_lookups)
        self.lookups = 0  # database lookups so far

    def __len__(self) -> int:
        return len(self._active) + len(self._refused)

    async def get(self, key_hash: bytes, query: Query) -> ApiKey | None:
        """The active key of this digest (None: unknown or revoked), from the cache while it is fresh."""
        now = self._clock()
        entry = self._active.get(key_hash)
        if entry is not None and entry.expires > now:
            self._active.move_to_end(key_hash)
            return entry.key
        refused = self._refused.get(key_hash)
        if refused is not None and refused > now:
            return None
        task = self._pending.get(key_hash)
        if task is None:
            task = asyncio.ensure_future(self._load(key_hash, query, known=entry is not None))
            self._pending[key_hash] = task
            task.add_done_callback(lambda done: self._done(key_hash, done))
        # shielded: a caller that goes away does not cancel the lookup others wait for
        return await asyncio.shield(task)

    async def _load(self, key_hash: bytes, query: Query, known: bool) -> ApiKey | None:
        if known:
            key = await query(key_hash)
        else:
            async with self._unknown:
                key = await query(key_hash)
        self.lookups += 1
        self._store(key_hash, key)
        return key

    def _done(self, key_hash: bytes, task: asyncio.Task[ApiKey | None]) -> None:
        if self._pending.get(key_hash) is task:
            del self._pending[key_hash]
        if not task.cancelled():
            task.exception()  # retrieved here, so an error nobody awaited any more is not logged as lost

    def _store(self, key_hash: bytes, key: ApiKey | None) -> None:
        expires = self._clock() + self.ttl
        if key is not None:
            self._refused.pop(key_hash, None)
            self._active[key_hash] = _Entry(expires, key)
            self._active.move_to_end(key_hash)
            while len(self._active) > self.max_active:
                self._active.popitem(last=False)
        else:
            self._active.pop(key_hash, None)
            self._refused[key_hash] = expires
            self._refused.move_to_end(key_hash)
            while len(self._refused) > self.max_refused:
                self._refused.popitem(last=False)


KEY_CACHE = web.AppKey("key_cache", KeyCache)


def unauthenticated(message: str) -> ApiError:
    return ApiError(401, "UNAUTHENTICATED", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(scope: str, alternatives: tuple[str, ...] = ()) -> ApiError:
    """403 naming `scope`; `alternatives`: the other scopes that would have done as well (said in the message)."""
    message = f"this API key lacks the {scope} scope"
    if alternatives:
        message += f", and the {' and '.join(alternatives)} scopes: any one of them opens this route"
    return ApiError(403, "FORBIDDEN", message, {"required_scope": scope})


def bearer_secret(request: web.Request) -> str:
    """The secret of `Authorization: Bearer <secret>`; 401 when the header is missing or not a bearer key."""
    headers = request.headers.getall("Authorization", [])
    if not headers:
        raise unauthenticated("an API key is required: send Authorization: Bearer <api key>")
    if len(headers) > 1:  # a proxy reading the first and this service another must never disagree on the caller
        raise unauthenticated("send one Authorization header")
    header = headers[0]
    match = _BEARER.fullmatch(header)
    if match is None:
        raise unauthenticated("the Authorization header must be: Bearer <api key>")
    return match.group(1)


async def authenticate(request: web.Request) -> ApiKey:
    """The active API key the request carries; 401 otherwise."""
    secret = bearer_secret(request)
    if not SECRET_FORMAT.fullmatch(secret):
        raise unauthenticated("unknown or revoked API key")

    async def query(key_hash: bytes) -> ApiKey | None:
        rows = await fetch(
            request, "SELECT name, scopes FROM wallet_authenticate(p_key_hash => %(h)s)", {"h": key_hash}
        )
        return ApiKey(rows[0]["name"], frozenset(rows[0]["scopes"])) if rows else None

    key = await request.app[KEY_CACHE].get(digest(secret), query)
    if key is None:
        raise unauthenticated("unknown or revoked API key")
    return key


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate and authorize the request for its route (after the error middleware, which turns the 401
    and 403 raised here into the contract's error body)."""
    match = request.match_info
    if match.http_exception is not None:  # 404 / 405: answered as they are, no key needed
        return await handler(request)
    name = match.route.name
    scope = required_scope(name)
    if scope is None:
        return await handler(request)
    key = await authenticate(request)
    others = ANY_SCOPE.get(name or "", (scope,))[1:]  # the other scopes that open the route, if any
    if not key.allows(scope) and not any(key.allows(other) for other in others):
        raise forbidden(scope, others)
    request[ACTOR] = key.name
    request[API_KEY] = key
    return await handler(request)
