"""`wallet-service serve` as a subprocess: started on a free loopback port, ready once GET /api/v1/health
answers 200 (within a deadline), stopped with SIGTERM (then waited for, and killed if it does not exit), or
killed with -9. The one launcher of the torture test, the HTTP benchmark and the test suite."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

API = "/api/v1"
STARTUP_SECONDS = 120.0  # an upper bound to stop waiting, not a speed requirement
STOP_SECONDS = 60.0  # how long stop() waits after SIGTERM before it kills
PYTHON_MODULE = (sys.executable, "-m", "service")
CONSOLE_SCRIPT = Path(sys.executable).parent / "wallet-service"  # as users run it, from the virtualenv

# the service is on the loopback address: never through an HTTP proxy from the environment
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for a server this process is about to start)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ServeError(RuntimeError):
    """`wallet-service serve` did not come up."""


class ServeExited(ServeError):
    """It exited before its health check answered 200 (e.g. it could not reach the database to migrate)."""


class ServeTimeout(ServeError):
    """Its health check did not answer 200 before the deadline (it has been killed)."""


class Serve:
    """`<command> serve --host HOST --port PORT [ARGS...]` with `env` (default: this process's environment),
    its stdout and stderr appended to `log_path`; `args` are more serve arguments (e.g. ["--workers", "2"]).
    start() may be called again after kill() or stop()."""

    def __init__(
        self,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        command: Sequence[str] = PYTHON_MODULE,
        args: Sequence[str] = (),
    ):
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.host = host
        self.port = port or free_port(host)
        self.command = [str(part) for part in command]
        self.args = [str(arg) for arg in args]
        self.origin = f"http://{host}:{self.port}"
        self.base = self.origin + API
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0  # processes started so far
        self._terminated = False  # SIGTERM already sent to the current process

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("wallet-service serve was never started")
        return self.proc.pid

    def workers(self) -> list[int]:
        """The pids of its child processes: the workers of `serve --workers N` (N > 1), none otherwise."""
        import psutil

        try:
            return [child.pid for child in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def start(self, timeout: float = STARTUP_SECONDS) -> Serve:
        """Start it and wait until GET /health answers 200. Raises ServeExited if it exits first, or
        ServeTimeout (after killing it) if the deadline passes."""
        if self.running:
            raise RuntimeError(f"wallet-service serve is already running (pid {self.pid})")
        deadline = time.monotonic() + timeout
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [*self.command, "serve", "--host", self.host, "--port", str(self.port), *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        self._terminated = False
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ServeExited(f"wallet-service serve exited with {code} before answering; {self._log_tail()}")
            if self.healthy():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise ServeTimeout(
                    f"wallet-service serve did not answer {API}/health with 200 within {timeout:g} s (killed); "
                    + self._log_tail()
                )
            time.sleep(0.2)

    def healthy(self, timeout: float = 2.0) -> bool:
        """GET /health answers 200 (not: refused, reset, timed out, 503 while the database is unreachable)."""
        try:
            with _OPENER.open(self.base + "/health", timeout=timeout) as response:
                return bool(response.status == 200)
        except (OSError, http.client.HTTPException):  # an HTTPError is an OSError too
            return False

    def terminate(self) -> None:
        """Send SIGTERM (a graceful shutdown) without waiting; stop() then only waits."""
        if self.proc is not None and self.running:
            self.proc.terminate()
            self._terminated = True

    def stop(self, timeout: float = STOP_SECONDS) -> int | None:
        """SIGTERM (unless terminate() sent it already) and wait up to `timeout`, then kill -9. Returns the
        exit status (negative: killed by that signal), None if it was never started."""
        if self.proc is None:
            return None
        if self.running:
            if not self._terminated:
                self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.wait()

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.proc is not None and self.running:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def __enter__(self) -> Serve:
        return self.start() if not self.running else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return f"{self.log_path}:\n{text[-chars:]}"
