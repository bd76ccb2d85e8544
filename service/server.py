"""`wallet-service serve`: get the database ready (or check that it is), serve the API until SIGTERM/SIGINT.

Two modes:
- Embedded (no DATABASE_URL): zero set-up for a newcomer. Start the embedded PostgreSQL, migrate and seed it
  as its superuser, make sure the login `wallet_service` exists holding only wallet_app (the embedded server
  trusts its Unix socket: no password), make sure a local admin API key exists in the key file (mode 0600,
  next to the data directory), and serve with a pool connecting as `wallet_service`.
- DATABASE_URL: production. Never migrate or seed (that is `wallet-service migrate`, run by the owner):
  check that every migration this package ships is applied (name the missing ones and exit 1 if any), warn
  loudly when the role is a superuser, belongs to wallet_owner or owns tables, and serve as that role.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import psycopg

from service import listener, schema
from service.app import API, create_app
from service.config import Config

log = logging.getLogger(__name__)

SERVICE_LOGIN = "wallet_service"  # the embedded mode's login holding only wallet_app
LOCAL_ADMIN_KEY = "local-admin"  # the embedded mode's admin API key (local-admin-2... if that name is taken)


def configure_access_log() -> None:
    """The access log is one JSON object per line on stderr, nothing around it."""
    access = logging.getLogger("service.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


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


def serve(config: Config, host: str | None = None, port: int | None = None) -> int:
    configure_access_log()
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
        app = create_app(
            url, retries=config.retries, pool_min_size=config.pool_min_size, pool_max_size=config.pool_max_size
        )

        def ready(_message: str) -> None:
            shown = "localhost" if host in ("0.0.0.0", "::") else host
            log.info(
                "wallet-service listening on http://%s:%d%s (docs: http://%s:%d%s/docs)",
                host,
                port,
                API,
                shown,
                port,
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
                    port,
                    API,
                )

        listener.run(app, host, port, on_ready=ready)
    finally:
        if embedded_mode:
            from service import embedded

            embedded.stop(config.data_dir)  # unless another process still uses it
    log.info("wallet-service stopped")
    return 0
