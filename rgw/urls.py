"""Gateway URL handling, kept free of heavy imports (used on the CLI's start-up path)."""

from __future__ import annotations

from urllib.parse import urlsplit

from rgw.errors import UsageError


def normalize_url(url: str) -> str:
    """``gateway.example.com/`` -> ``https://gateway.example.com`` (scheme added, one ``/`` stripped)."""
    text = url.strip()
    if not text:
        raise UsageError(
            "the gateway URL is empty", hint="Example: rack-gateway login production https://gateway.example.com"
        )
    if "://" not in text:
        text = "https://" + text
    if text.endswith("/"):
        text = text[:-1]
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise UsageError(f"not a gateway URL: {url!r} (bad port)", hint="Example: https://example.com") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"not a gateway URL: {url!r}", hint="Example: https://gateway.example.com")
    return text


def looks_like_url(text: str) -> bool:
    return "://" in text or text.startswith(("localhost", "127.")) or ("." in text and "/" in text)
