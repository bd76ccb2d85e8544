"""`wallet-service serve`: pick the database, migrate and seed it, serve the API until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import sys

from service import listener, schema
from service.app import API, create_app
from service.config import Config, database_url

log = logging.getLogger(__name__)


def configure_access_log() -> None:
    """The access log is one JSON object per line on stderr, nothing around it."""
    access = logging.getLogger("service.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def serve(config: Config, host: str | None = None, port: int | None = None) -> int:
    configure_access_log()
    logging.getLogger("yoyo").setLevel(logging.WARNING)  # one line per migration step is noise here
    url = database_url(config)
    schema.migrate(url)
    schema.seed(url)
    app = create_app(
        url, retries=config.retries, pool_min_size=config.pool_min_size, pool_max_size=config.pool_max_size
    )
    host = host or config.host
    port = config.port if port is None else port

    def ready(_message: str) -> None:
        shown = "localhost" if host in ("0.0.0.0", "::") else host
        log.info(
            "wallet-service listening on http://%s:%d%s (docs: http://%s:%d%s/docs)", host, port, API, shown, port, API
        )

    try:
        listener.run(app, host, port, on_ready=ready)
    finally:
        if config.database_url is None:
            from service import embedded

            embedded.stop(config.data_dir)  # unless another process still uses it
    log.info("wallet-service stopped")
    return 0
