"""Configuration, read once from the environment into a frozen dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    database_url: str | None  # None: start the embedded PostgreSQL in data_dir
    host: str
    port: int
    data_dir: Path  # embedded PostgreSQL's data directory (survives restarts)
    api_key_file: Path  # embedded mode: where serve keeps the local admin API key (mode 0600)
    pool_min_size: int
    pool_max_size: int
    retries: int  # extra attempts after a lock timeout, deadlock or serialization failure
    workers: int  # serve: processes sharing the port (each with its own pool of pool_max_size connections)
    metrics: bool  # GET /metrics and the request/database instruments (WALLET_METRICS=off: neither)
    access_log: bool  # one JSON log line per request (WALLET_ACCESS_LOG=off: none)
    # concurrent top-ups/bonuses/spends share one call of wallet_post_batch and one commit (WALLET_GROUP_COMMIT=
    # on; off by default): more postings per second with many concurrent clients, fewer with few (README)
    group_commit: bool

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] = os.environ) -> Config:
        data_dir = Path(env.get("WALLET_DATA_DIR", Path.home() / ".local/share/wallet-service/pgdata")).expanduser()
        key_file = env.get("WALLET_API_KEY_FILE")
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            host=env.get("HOST", "0.0.0.0"),
            port=int(env.get("PORT", "3000")),
            data_dir=data_dir,
            # next to the data directory (~/.local/share/wallet-service/admin-api-key by default), not in it:
            # the data directory belongs to the PostgreSQL server's own user
            api_key_file=Path(key_file).expanduser() if key_file else data_dir.absolute().parent / "admin-api-key",
            pool_min_size=int(env.get("WALLET_POOL_MIN_SIZE", "2")),
            pool_max_size=int(env.get("WALLET_POOL_MAX_SIZE", "10")),
            retries=int(env.get("WALLET_RETRIES", "3")),
            workers=int(env.get("WALLET_WORKERS", "1")),
            metrics=_switch(env.get("WALLET_METRICS", "on"), "WALLET_METRICS"),
            access_log=_switch(env.get("WALLET_ACCESS_LOG", "on"), "WALLET_ACCESS_LOG"),
            group_commit=_switch(env.get("WALLET_GROUP_COMMIT", "off"), "WALLET_GROUP_COMMIT"),
        )


def _switch(value: str, name: str) -> bool:
    """on/off, true/false, 1/0, yes/no (any case); anything else is a configuration error, not a guess."""
    word = value.strip().lower()
    if word in ("on", "true", "1", "yes"):
        return True
    if word in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"{name} must be on or off, not {value!r}")


def database_url(config: Config) -> str:
    """DATABASE_URL if set (no server is ever started then), else the embedded PostgreSQL's URL."""
    if config.database_url is not None:
        return config.database_url
    from service import embedded

    return embedded.start(config.data_dir)
