"""Time helpers: every timestamp in the system is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_ocpp_datetime(value: str) -> datetime:
    """Parse an OCPP (RFC 3339) timestamp into aware UTC.

    A missing offset is read as UTC (OCPP requires UTC; some firmware omits the ``Z``).
    Raises ``ValueError`` on anything that is not a date-time.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_ocpp_datetime(value: datetime) -> str:
    """``2024-01-31T12:00:00.123Z``: millisecond precision, always ``Z``."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
