"""The HTTP listener: runs the aiohttp application on host:port until SIGTERM/SIGINT, then drains it.

What it adds to aiohttp's own listener, so that no client can take the process down:
- the open-file limit: RLIMIT_NOFILE's soft limit is raised to the hard one at start-up;
- at most MAX_CONNECTIONS client connections (fewer if the open-file limit is lower: it keeps FD_RESERVE
  descriptors for the rest). Every client socket is counted from its accept() on, and accepted only when
  it fits: a new connection beyond the limit first closes the oldest idle one (no request in progress:
  waiting for its first request, for its next one, or for the rest of a request line and headers), or, if
  every connection is busy, is answered 503 SERVICE_UNAVAILABLE and closed at once;
- a connection with no request in progress is closed after KEEPALIVE_TIMEOUT_SECONDS;
- a request aiohttp's HTTP parser refuses (malformed request line, headers, header too long, bad chunked
  encoding...) is answered with the contract's JSON error body (400 VALIDATION_ERROR), not aiohttp's
  text/plain, and with `Server: wallet-service`, not aiohttp's version banner.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
import signal
import socket
import uuid
from collections.abc import Callable
from typing import Any

import uvloop
from aiohttp import web
from yarl import URL

from service.api_errors import RETRY_AFTER_SECONDS, ApiError
from service.limits import FD_RESERVE, KEEPALIVE_TIMEOUT_SECONDS, LISTEN_BACKLOG, MAX_CONNECTIONS
from service.middleware import REQUEST_ID_HEADER, SERVER_HEADER, protocol_error_response

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_SECONDS = 30.0  # how long in-flight requests may take to finish after SIGTERM


def raise_open_file_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit (a hard limit of "unlimited" is left alone, the
    kernel would refuse it); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft


def connection_limit(open_files: int) -> int:
    """How many client connections fit: MAX_CONNECTIONS, or fewer if the open-file limit leaves less room
    beside the FD_RESERVE descriptors the process needs for everything else."""
    if open_files == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, open_files - FD_RESERVE))


def _refusal() -> bytes:
    """A whole HTTP response: 503 SERVICE_UNAVAILABLE, written to a connection beyond the limit before it
    is closed (it has sent nothing yet: there is no request to parse)."""
    error = ApiError(503, "SERVICE_UNAVAILABLE", "too many open connections; retry later")
    body = json.dumps(error.body()).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        f"Server: {SERVER_HEADER}\r\n"
        f"{REQUEST_ID_HEADER}: {uuid.uuid4().hex}\r\n\r\n"
    )
    return head.encode() + body


# ---------------------------------------------------------------------------------------------------------
# aiohttp's private parts, all of them here (aiohttp 3.14; tests/api/test_hostile_input.py fails if a
# release changes them):
# - web.AppRunner._make_server() builds the web.Server that is the protocol factory; _Runner wraps it.
# - web.Server keeps its loop and RequestHandler kwargs in _loop and _kwargs; _Server rebuilds the same one.
# - RequestHandler: _manager is the web.Server that made it; a _waiter that is pending means it waits for
#   (the rest of) a request, with none in
#   progress (the state aiohttp's own keep-alive timer closes); handle_error() builds the answer to a
#   request its parser refused, and to an exception that escaped every middleware.
# - web.BaseSite (public, for custom sites): a subclass sets _server, uses _runner and _backlog, as
#   web.TCPSite does. _Site replaces TCPSite's asyncio server by _Listening, which accepts a connection only
#   when it can count it: asyncio's own accept loop opens up to a backlog of sockets at a time, several
#   times before any of them reaches the protocol, which no limit in the protocol can bound.
# ---------------------------------------------------------------------------------------------------------


class _Handler(web.RequestHandler):
    """aiohttp's connection handler, which knows when it is idle and answers parser errors in JSON."""

    def idle(self) -> bool:
        """No request in progress: waiting for the first request, the next one, or the rest of one's headers."""
        return self._waiter is not None and not self._waiter.done()

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp does: an answer has begun, the connection is broken
            raise ConnectionError("the response has begun: no error response can follow")
        server = self._manager
        app = server.app if isinstance(server, _Server) else None
        return protocol_error_response(status, exc, request.remote, app)


class _Server(web.Server):
    """aiohttp's Server with _Handler connections, and the count of every client socket the process holds:
    counted connections, evicted ones not closed yet, accepted ones not connected yet."""

    def __init__(self, base: web.Server, limit: int, app: web.Application | None = None) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self.limit = limit
        self.app = app  # whose switches decide whether a request the parser refused is counted and logged
        self._open: dict[web.RequestHandler, None] = {}  # oldest first
        self._closing: set[web.RequestHandler] = set()  # evicted, until their connection_lost
        self.pending = 0  # accepted sockets not connected to a handler yet
        self.listeners: list[_Listening] = []

    def __call__(self) -> _Handler:
        return _Handler(self, loop=self._loop, **self._kwargs)

    @property
    def open_connections(self) -> int:
        return len(self._open) + len(self._closing) + self.pending

    def evict_oldest_idle(self) -> bool:
        """Close the oldest idle connection at once (whatever it has not sent); False if none is idle. Its
        socket stays counted until its connection_lost."""
        idle = next((h for h in self._open if isinstance(h, _Handler) and h.idle()), None)
        if idle is None:
            return False
        del self._open[idle]
        self._closing.add(idle)
        if idle.transport is not None:
            idle.transport.abort()
        return True

    @property
    def closing(self) -> int:
        return len(self._closing)

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._open[handler] = None

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._open.pop(handler, None)
        self._closing.discard(handler)
        for listening in self.listeners:
            listening.resume()


class _Runner(web.AppRunner):
    """web.AppRunner whose protocol factory is _Server."""

    def __init__(self, app: web.Application, limit: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limit = limit

    async def _make_server(self) -> web.Server:
        return _Server(await super()._make_server(), self.limit, self.app)


class _Listening(asyncio.AbstractServer):
    """Listening sockets whose connections are accepted one at a time, each only once _Server admits it."""

    def __init__(self, sockets: list[socket.socket], server: _Server, backlog: int) -> None:
        self._sockets = sockets
        self._server = server
        self._backlog = backlog
        self._loop = asyncio.get_running_loop()
        self._reading = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        server.listeners.append(self)
        self.resume()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def resume(self) -> None:
        if not self._reading and not self._closed:
            for sock in self._sockets:
                self._loop.add_reader(sock.fileno(), self._accept, sock)
            self._reading = True

    def pause(self) -> None:
        if self._reading:
            for sock in self._sockets:
                self._loop.remove_reader(sock.fileno())
            self._reading = False

    def _accept(self, sock: socket.socket) -> None:
        """Accept what fits: below the limit, or in place of the oldest idle connection (the one socket
        over the limit until the evicted one is closed); a connection that finds every other busy is
        answered 503 and closed. While an evicted socket is still open at the limit, accept nothing."""
        server = self._server
        for _ in range(self._backlog):
            if server.open_connections >= server.limit and server.closing:
                self.pause()  # until a connection_lost (or a second, should none come)
                self._loop.call_later(1.0, self.resume)
                return
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("accept() failed: %s; accepting again in a second", exc)
                    self.pause()
                    self._loop.call_later(1.0, self.resume)
                    return
                continue  # the client gave up meanwhile (ECONNABORTED...)
            if server.open_connections >= server.limit and not server.evict_oldest_idle():
                log.warning("%d connections, all busy: a new one is refused", server.open_connections)
                try:
                    conn.setblocking(False)
                    conn.send(_refusal())  # a few hundred bytes into an empty send buffer
                except OSError:
                    pass
                conn.close()
                continue
            conn.setblocking(False)
            server.pending += 1
            task = self._loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._server, conn)
        except OSError:
            conn.close()
        finally:
            self._server.pending -= 1

    def close(self) -> None:
        self.pause()
        self._closed = True
        if self in self._server.listeners:
            self._server.listeners.remove(self)
        for sock in self._sockets:
            sock.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._closed

    async def start_serving(self) -> None:
        pass  # serving from the start

    async def serve_forever(self) -> None:
        raise NotImplementedError("run the runner instead")

    async def wait_closed(self) -> None:
        pass


def _bind_all(infos: list[tuple[Any, ...]], backlog: int) -> list[socket.socket]:
    """A listening, non-blocking socket per address of getaddrinfo's `infos` (SO_REUSEADDR; an IPv6 socket
    takes IPv6 only, the IPv4 one has its own); all closed again if one fails."""
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind(host: str | None, port: int, backlog: int = LISTEN_BACKLOG) -> list[socket.socket]:
    """The listening sockets of host:port (port 0: a free one), bound as a _Site binds its own: for `serve
    --workers N`, whose parent binds once and whose workers serve them (make_site's `sockets`)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return _bind_all(infos, backlog)


class _Site(web.BaseSite):
    """web.TCPSite, with _Listening in place of asyncio's server; on sockets of its own, or on listening
    sockets bound already (by another process, which may accept on them too: the accept loop takes an
    EAGAIN as "another process won the race")."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        backlog: int,
        sockets: list[socket.socket] | None = None,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port = host, port
        self._sockets = sockets

    @property
    def port(self) -> int:
        if isinstance(self._server, _Listening) and self._server.sockets:
            port: int = self._server.sockets[0].getsockname()[1]
            return port
        return self._port

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host or "0.0.0.0", port=self.port))

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert isinstance(server, _Server), "a _Site serves a runner made by make_runner"
        if self._sockets is not None:
            sockets = self._sockets
            for sock in sockets:
                sock.setblocking(False)
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                self._host or None, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            sockets = _bind_all(infos, self._backlog)
        self._server = _Listening(sockets, server, self._backlog)


# ---------------------------------------------------------------------------------------------------------


def make_runner(app: web.Application, *, max_connections: int = MAX_CONNECTIONS) -> web.AppRunner:
    """The runner `run` serves the app with (the tests serve it the same way, through make_site):
    connection limit, keep-alive timeout, JSON answers to malformed requests, no access log of aiohttp's
    own (the app logs each request)."""
    return _Runner(
        app,
        max_connections,
        access_log=None,
        keepalive_timeout=KEEPALIVE_TIMEOUT_SECONDS,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
    )


def make_site(runner: web.AppRunner, host: str | None, port: int, sockets: list[socket.socket] | None = None) -> _Site:
    """Where a runner made by make_runner listens: host:port (port 0: a free one, see .port), or `sockets`,
    listening sockets bound already (see bind); the site closes them when it stops."""
    return _Site(runner, host, port, LISTEN_BACKLOG, sockets)


def open_connections(runner: web.AppRunner) -> int:
    """How many client sockets a runner made by make_runner holds."""
    server = runner.server
    return server.open_connections if isinstance(server, _Server) else 0


async def serve(
    app: web.Application,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    stop: asyncio.Event,
    *,
    max_connections: int = MAX_CONNECTIONS,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve app on host:port (or on `sockets`, bound already) until `stop` is set: then stop accepting, let
    in-flight requests finish (up to the shutdown timeout), and run the app's cleanup (which closes the
    connection pool)."""
    runner = make_runner(app, max_connections=max_connections)
    await runner.setup()
    try:
        site = make_site(runner, host, port, sockets)
        await site.start()
        on_ready(f"serving on {site.name}")
        await stop.wait()
    finally:
        await runner.cleanup()


def prepare_connection_limit() -> int:
    """Raise the open-file limit (raise_open_file_limit), log it, and return the connection limit it
    allows. `serve --workers N` calls it once, in the parent: its workers inherit the raised limit."""
    open_files = raise_open_file_limit()
    limit = connection_limit(open_files)
    log.info(
        "open-file limit %s: at most %d client connections per process; idle ones closed after %g s",
        "unlimited" if open_files == resource.RLIM_INFINITY else open_files,
        limit,
        KEEPALIVE_TIMEOUT_SECONDS,
    )
    return limit


def run(
    app: web.Application,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    *,
    sockets: list[socket.socket] | None = None,
    max_connections: int | None = None,
) -> None:
    """Serve app until SIGTERM/SIGINT: stop accepting, let in-flight requests finish (up to the shutdown
    timeout), then run the app's cleanup (which closes the connection pool). Unless given max_connections,
    first raises the open-file limit and sizes the connection limit to it (prepare_connection_limit).

    `sockets`: serve these listening sockets, bound already (by the parent of `serve --workers N`), instead of
    binding host:port. SIGTERM and SIGINT are unblocked once their handlers are installed: a worker starts
    with them blocked, so that one sent while it starts is not lost but drains it as soon as it can.

    The event loop is uvloop's (libuv), not asyncio's own: the same asyncio API, less CPU per request (4 to 12%
    of the service's CPU per top-up, measured: README, Operating, Performance). Each process makes its own loop
    here, after any fork (the parent of `serve --workers N` never runs one)."""
    limit = prepare_connection_limit() if max_connections is None else max_connections

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        await serve(app, host, port, on_ready, stop, max_connections=limit, sockets=sockets)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
