"""History cursors: an opaque, URL-safe token for "the entries older than this one" (keyset paging)."""

from __future__ import annotations

import base64
import binascii

from service.limits import MAX_CURSOR_LENGTH

_CURSOR_PREFIX = "e1:"


def encode_cursor(entry_id: int) -> str:
    """An opaque continuation token for the entries older than entry_id."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The entry id of a cursor encode_cursor made, or None. Only a bounded input is decoded: a cursor
    longer than MAX_CURSOR_LENGTH (or not ASCII) is refused before any base64 or integer parsing."""
    if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    digits = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not (digits.isascii() and digits.isdigit()):
        return None
    value = int(digits)
    if not 1 <= value <= 2**63 - 1 or encode_cursor(value) != cursor:
        return None
    return value
