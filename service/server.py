"""`wallet-service serve`: get the database ready (or check that it is), serve the API until SIGTERM/SIGINT.

Two modes:
- Embedded (no DATABASE_URL): zero set-up for a newcomer. Start the embedded PostgreSQL, migrate and seed it
  as its superuser, make sure the login `wallet_service` exists holding only wallet_app (the embedded server
  trusts its Unix socket: no password), make sure a local admin API key exists in the key file (mode 0600,
  next to the data directory), and serve with a pool connecting as `wallet_service`.
- DATABASE_URL: production. Never migrate or seed (that is `wallet-service migrate`, run by the owner):
  check that every migration this package ships is applied (name the missing ones and exit 1 if any), warn
  loudly when the role is a superuser, belongs to wallet_owner or owns tables, and serve as that role.

Either way, all of that happens once, in this process; then it serves in this process (`--workers 1`, the
default) or in N forked worker processes sharing its listening socket (`--workers N`: class Workers).
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from aiohttp import web

from service import listener, schema
from service.app import API, create_app
from service.config import Config

log = logging.getLogger(__name__)

SERVICE_LOGIN = "wallet_service"  # the embedded mode's login holding only wallet_app
LOCAL_ADMIN_KEY = "local-admin"  # the embedded mode's admin API key (local-admin-2... if that name is taken)


def write_secret(path: Path, secret: str) -> None:
    """Write the secret to path, readable by this user only (0600), replacing the file whole."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secret + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def ensure_local_admin_key(superuser_url: str, path: Path) -> str:
    """The name of the admin API key whose secret is in `path`: the one already there if it is an active key
    of this database, else a new one (written there, mode 0600)."""
    if path.exists():
        secret = path.read_text().strip()
        name = schema.active_key_name(superuser_url, secret) if secret else None
        if name is not None:
            return name
        log.warning("%s holds no active API key of this database (a new data directory?): writing a new one", path)
    taken = {key.name for key in schema.list_keys(superuser_url)}
    name = next(n for n in (LOCAL_ADMIN_KEY, *(f"{LOCAL_ADMIN_KEY}-{i}" for i in range(2, 10**6))) if n not in taken)
    _, secret = schema.create_key(superuser_url, name, ["admin"])
    write_secret(path, secret)
    log.info("created the admin API key %s of this local server; its secret is in %s (mode 0600)", name, path)
    return name


def prepare_embedded(config: Config) -> tuple[str, str]:
    """Start, migrate and seed the embedded PostgreSQL; the service login and the local admin key. Returns
    (the URL the service connects with, the admin key's name)."""
    from service import embedded

    superuser_url = embedded.start(config.data_dir)
    schema.migrate(superuser_url)
    schema.seed(superuser_url)
    if schema.ensure_app_login(superuser_url, SERVICE_LOGIN):
        log.info("created the login %s (holding only wallet_app) that the service connects as", SERVICE_LOGIN)
    key_name = ensure_local_admin_key(superuser_url, config.api_key_file)
    return schema.login_url(superuser_url, SERVICE_LOGIN), key_name


def check_database(url: str) -> bool:
    """DATABASE_URL mode: every shipped migration applied (else log which are missing: False), and a loud
    warning for each right the role has beyond wallet_app's."""
    try:
        missing = schema.missing_migrations(url)
    except psycopg.errors.InsufficientPrivilege:
        log.error(
            "the role of DATABASE_URL may not execute wallet_migrations(): grant it wallet_app "
            "(GRANT wallet_app TO <login>, or wallet-service migrate --app-login <login>)"
        )
        return False
    except psycopg.Error as exc:
        log.error("cannot check the migrations of the database of DATABASE_URL: %s", str(exc).strip())
        return False
    if missing:
        log.error("the database lacks %d migration(s) this service needs: %s", len(missing), ", ".join(missing))
        log.error(
            "run `wallet-service migrate` as the owner (a superuser or a member of wallet_owner) first; "
            "serve never migrates a database given by DATABASE_URL"
        )
        return False
    warn_about_rights(url)
    return True


def warn_about_rights(url: str) -> None:
    rights = schema.rights(url)
    if rights.superuser:
        problem = "is a SUPERUSER: it can change or erase the ledger and bypass every rule"
    elif rights.owner_member:
        problem = f"is (a member of) {schema.OWNER_ROLE}: it can alter or drop every table and function"
    elif rights.owned_tables:
        problem = f"owns tables ({', '.join(rights.owned_tables)}): it can alter, rewrite or drop them"
    else:
        return
    for line in (
        "!" * 100,
        f"SECURITY: the service connects as role {rights.role}, which {problem}.",
        f"SECURITY: connect as a login holding only {schema.APP_ROLE} (README, section Security):",
        f"SECURITY:   CREATE ROLE {SERVICE_LOGIN} LOGIN PASSWORD '...';",
        f"SECURITY:   GRANT {schema.APP_ROLE} TO {SERVICE_LOGIN};",
        "!" * 100,
    ):
        log.warning("%s", line)


def serve(config: Config, host: str | None = None, port: int | None = None, workers: int = 1) -> int:
    """Get the database ready (embedded mode: start, migrate, seed, login, key; else check it), then serve:
    in this process (workers == 1), or in `workers` processes sharing one listening socket (see Workers).
    Returns the exit status."""
    logging.getLogger("yoyo").setLevel(logging.WARNING)  # one line per migration step is noise here
    host = host or config.host
    port = config.port if port is None else port
    embedded_mode = config.database_url is None
    try:
        if embedded_mode:
            url, key_name = prepare_embedded(config)
            warn_about_rights(url)  # wallet_service, unless someone gave it more since
        else:
            url, key_name = str(config.database_url), None
            if not check_database(url):
                return 1

        def ready(bound_port: int) -> None:
            shown = "localhost" if host in ("0.0.0.0", "::") else host
            log.info(
                "wallet-service listening on http://%s:%d%s (docs: http://%s:%d%s/docs)",
                host,
                bound_port,
                API,
                shown,
                bound_port,
                API,
            )
            if key_name is not None:
                log.info(
                    "API key %s (scope admin) of this local server: in %s; try: "
                    'curl -H "Authorization: Bearer $(cat %s)" http://%s:%d%s/wallets/user_alice/balance',
                    key_name,
                    config.api_key_file,
                    config.api_key_file,
                    shown,
                    bound_port,
                    API,
                )

        if workers == 1:
            listener.run(make_app(config, url), host, port, on_ready=lambda _: ready(port))
        else:
            code = Workers(config, url, workers).serve(host, port, ready)
            if code != 0:
                return code
    finally:
        if embedded_mode:
            from service import embedded

            embedded.stop(config.data_dir)  # unless another process still uses it
    log.info("wallet-service stopped")
    return 0


def make_app(config: Config, url: str) -> web.Application:
    return create_app(
        url,
        retries=config.retries,
        pool_min_size=config.pool_min_size,
        pool_max_size=config.pool_max_size,
        metrics_on=config.metrics,
        access_log=config.access_log,
        group_commit=config.group_commit,
    )


# ---------------------------------------------------------------------------------------------------------
# Workers: `serve --workers N`.
#
# The parent has done everything that must happen once (embedded server, migrations, seed, login, key; or the
# DATABASE_URL checks) when it binds the listening sockets and forks N workers. os.fork, not spawn: the parent
# has no event loop, no thread, no database connection open at that point, so a forked worker starts clean,
# inherits the sockets, the logging set-up and the environment (PROMETHEUS_MULTIPROC_DIR) as they are, and
# needs no second entry point nor a re-import of the whole service. Each worker builds its own app, hence its
# own pool, inside its own event loop, serves the inherited sockets (the kernel hands each connection to one
# accept(): listener._Listening takes an EAGAIN as another worker's win) and leaves with os._exit, so that
# nothing of the parent's runs in it again: not the embedded server's atexit stop, not serve()'s finally.
#
# The parent only supervises, with SIGTERM, SIGINT and SIGCHLD blocked and taken by sigtimedwait (no handler
# runs at an awkward moment): SIGTERM or SIGINT closes its copy of the sockets, is forwarded to every worker
# (each drains its in-flight requests, up to listener.SHUTDOWN_TIMEOUT_SECONDS, and closes its pool), and the
# parent waits for them all (kill -9 after STOP_GRACE_SECONDS) before serve() stops the embedded server. A
# worker that exits otherwise is logged and replaced, at most MAX_RESTARTS times within RESTART_WINDOW_SECONDS:
# one more and the parent stops every worker and exits 1 (a crash loop must not spin). A worker whose parent
# dies (kill -9) gets SIGTERM from the kernel (PR_SET_PDEATHSIG), so no orphan keeps the port.
# ---------------------------------------------------------------------------------------------------------

MAX_RESTARTS = 5  # worker restarts allowed within RESTART_WINDOW_SECONDS; one more stops serve (exit 1)
RESTART_WINDOW_SECONDS = 60.0
STOP_GRACE_SECONDS = listener.SHUTDOWN_TIMEOUT_SECONDS + 15.0  # after the forwarded SIGTERM; then kill -9
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process when its parent dies (Linux); exit at once if it is dead already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: an orphan then serves until it is stopped itself
        pass
    if os.getppid() != parent:
        os._exit(0)


def check_connection_budget(url: str, connections: int) -> None:
    """Warn when the pools may open more connections than the server's max_connections."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_setting('max_connections')::int").fetchone()
    except psycopg.Error as exc:
        log.warning("cannot read the server's max_connections: %s", str(exc).strip())
        return
    if row is not None and connections > row[0]:
        log.warning(
            "the workers' pools may open %d connections, the PostgreSQL server allows max_connections = %d: "
            "lower WALLET_POOL_MAX_SIZE or --workers, or raise max_connections",
            connections,
            row[0],
        )


class Workers:
    """The parent of `serve --workers N` (N > 1): binds, forks, supervises, stops."""

    def __init__(self, config: Config, url: str, count: int) -> None:
        self.config, self.url, self.count = config, url, count
        self.sockets: list[socket.socket] = []
        self.host, self.port, self.limit = "", 0, 0
        self.pids: dict[int, int] = {}  # live worker pid -> its number (1..count; a replacement takes the same)
        self.restarts: collections.deque[float] = collections.deque()  # when, within the window
        self.stopping_since: float | None = None
        self.failed = False  # a crash loop, a worker that did not stop cleanly: exit 1

    def serve(self, host: str, port: int, ready: Callable[[int], None]) -> int:
        from service import metrics_dir

        total = self.count * self.config.pool_max_size
        self.limit = listener.prepare_connection_limit()
        self.sockets = listener.bind(host, port)
        self.host, self.port = host, self.sockets[0].getsockname()[1]
        log.info(
            "%d workers, each with its own pool of up to %d connections (WALLET_POOL_MAX_SIZE): up to %d "
            "connections to PostgreSQL",
            self.count,
            self.config.pool_max_size,
            total,
        )
        check_connection_budget(self.url, total)
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for number in range(1, self.count + 1):
                self._start(number)
            ready(self.port)
            return self._supervise()
        finally:
            for pid in self.pids:  # only after an error in the parent itself: no worker outlives it
                os.kill(pid, signal.SIGKILL)
            for pid in list(self.pids):
                os.waitpid(pid, 0)
                metrics_dir.worker_exited(pid)
            self._close_sockets()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            metrics_dir.cleanup()

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []

    def _start(self, number: int) -> None:
        if threading.active_count() > 1:
            log.warning("forking worker %d while the parent runs %d threads", number, threading.active_count())
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 1
            try:
                _die_with_parent(parent)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})  # TERM, INT: see listener.run
                code = self._work(number)
            except BaseException:
                log.exception("worker %d (pid %d) failed", number, os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.pids[pid] = number
        log.info("worker %d (pid %d) started", number, pid)

    def _work(self, number: int) -> int:
        """The worker's life: its own app and pool, on the inherited sockets, until SIGTERM/SIGINT."""
        app = make_app(self.config, self.url)
        listener.run(
            app,
            self.host,
            self.port,
            on_ready=lambda _: log.info("worker %d (pid %d) serving", number, os.getpid()),
            sockets=self.sockets,
            max_connections=self.limit,
        )
        log.info("worker %d (pid %d) stopped", number, os.getpid())
        return 0

    def _supervise(self) -> int:
        while self.pids or self.stopping_since is None:
            info = signal.sigtimedwait(_SIGNALS, 1.0)
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                self._stop(signal.Signals(info.si_signo))
            self._reap()
            stopping = self.stopping_since
            if stopping is not None and self.pids and time.monotonic() - stopping > STOP_GRACE_SECONDS:
                log.error(
                    "workers %s still running %g s after the stop: killing them",
                    ", ".join(str(p) for p in self.pids),
                    STOP_GRACE_SECONDS,
                )
                self.failed = True
                for pid in self.pids:
                    os.kill(pid, signal.SIGKILL)
                self.stopping_since = time.monotonic()  # and reap them
        return 1 if self.failed else 0

    def _stop(self, sig: signal.Signals) -> None:
        if self.stopping_since is None:
            log.info("%s: stopping %d workers (each lets its in-flight requests finish)", sig.name, len(self.pids))
            self.stopping_since = time.monotonic()
            self._close_sockets()  # the port closes once every worker has closed its copy too
        for pid in self.pids:
            os.kill(pid, sig)

    def _reap(self) -> None:
        from service import metrics_dir

        for pid in list(self.pids):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: it is gone all the same
                done, status = pid, 0
            if done == 0:
                continue
            number = self.pids.pop(pid)
            metrics_dir.worker_exited(pid)
            code = os.waitstatus_to_exitcode(status)
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            if self.stopping_since is not None:
                if code != 0:
                    log.warning("worker %d (pid %d) %s while stopping", number, pid, how)
                    self.failed = True
                continue
            log.error("worker %d (pid %d) %s unexpectedly", number, pid, how)
            now = time.monotonic()
            while self.restarts and now - self.restarts[0] > RESTART_WINDOW_SECONDS:
                self.restarts.popleft()
            if len(self.restarts) >= MAX_RESTARTS:
                log.error(
                    "%d workers restarted within %g s already: a crash loop; stopping every worker",
                    len(self.restarts),
                    RESTART_WINDOW_SECONDS,
                )
                self.failed = True
                self._stop(signal.SIGTERM)
                continue
            self.restarts.append(now)
            self._start(number)
