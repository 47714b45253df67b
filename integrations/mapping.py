"""Small helpers connectors share when reading payloads and settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from integrations.errors import FatalSyncError, InvalidRecord


def iso(value: Any) -> datetime | None:
    """An ISO 8601 timestamp from a payload (``2019-06-03T02:23:47Z``), aware UTC."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRecord(f"bad timestamp {str(value)[:40]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def epoch(value: Any) -> datetime | None:
    """A Unix timestamp from a payload (Stripe, Delighted), aware UTC."""
    if value in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError):
        raise InvalidRecord(f"bad timestamp {str(value)[:40]!r}") from None


def path_and_query(url: str) -> str:
    """``/api/v2/x?cursor=…`` from an absolute next-page URL: the next request goes to the
    configured base URL (a proxy, a test server) even when the source names its own host."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def setting(values: Any, name: str) -> str:
    """A configured value by its environment variable name, secret or not."""
    value = values.get(name) if values is not None else None
    if value is None:
        raise FatalSyncError(f"{name} is not set")
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
