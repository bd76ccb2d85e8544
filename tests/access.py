"""API keys and the least-privileged login for the tests: the app under test connects as APP_LOGIN, a login
holding only wallet_app (created once per test server by tests/conftest.py), and authenticates its requests
with a key created in the test's own database; inspection queries keep the superuser URL."""

from __future__ import annotations

from collections.abc import Iterable

from service import schema

APP_LOGIN = "wallet_app_login"  # holds only wallet_app (schema.ensure_app_login), like the service in production


def app_login_url(db_url: str) -> str:
    """db_url (the superuser's), connecting as APP_LOGIN instead."""
    return schema.login_url(db_url, APP_LOGIN)


def create_key(db_url: str, scopes: Iterable[str] = ("admin",), name: str = "test-admin") -> str:
    """A new API key in db_url's database; returns its secret."""
    _, secret = schema.create_key(db_url, name, list(scopes))
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
