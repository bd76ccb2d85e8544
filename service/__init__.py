"""wallet-service: a double-entry ledger of players' virtual credits."""

__version__ = "0.1.0"
