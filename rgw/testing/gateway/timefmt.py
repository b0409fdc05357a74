"""RFC 3339 timestamps as the Go gateway writes them (UTC, `Z`, whole seconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_or_none(seconds: float | None) -> str | None:
    return None if seconds is None else rfc3339(seconds)
