"""The HTTP listener: runs the aiohttp application on host:port until SIGTERM/SIGINT, then drains it."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

SHUTDOWN_TIMEOUT_SECONDS = 30.0  # how long in-flight requests may take to finish after SIGTERM


def run(app: web.Application, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve app until SIGTERM/SIGINT: stop accepting, let in-flight requests finish (up to the shutdown
    timeout), then run the app's cleanup (which closes the connection pool)."""
    web.run_app(app, host=host, port=port, access_log=None, print=on_ready, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
