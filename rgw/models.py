"""Plain data the library passes around: frozen dataclasses, no behaviour beyond parsing.

``RackConfig`` is one entry of ``config.json``'s ``gateways``; ``LoginStart`` is what
``/auth/cli/start`` answers; ``LoginPending`` and ``Session`` are the two useful answers of
``/auth/cli/complete``; ``CallbackResult`` is what the loopback listener heard from the browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def parse_time(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp (``Z`` or offset); ``None`` for anything unparsable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class RackConfig:
    """One rack (gateway) in the config file.  ``extra`` keeps fields we do not know."""

    name: str
    url: str
    token: str | None = None
    email: str | None = None
    expires_at: str | None = None
    session_id: int | None = None
    channel: str | None = None
    device_id: str | None = None
    device_name: str | None = None
    mfa_verified: bool | None = None
    #: The user's explicit opt-in to plain HTTP to this rack's (non-loopback) gateway.
    insecure_http: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def logged_in(self) -> bool:
        return bool(self.token)

    @property
    def rejected(self) -> str | None:
        """Why the gateway last rejected this session (None: it has not, as far as we saw)."""
        note = self.extra.get("session_rejected")
        if isinstance(note, dict) and self.token:
            reason = note.get("reason")
            return reason if isinstance(reason, str) and reason else "rejected"
        return None


#: How many rack logins run at once by default (``login --all``, ``login --rack A --rack B``).
DEFAULT_PARALLEL = 8


@dataclass(frozen=True)
class LoginRequest:
    """A rack to log in to, and its gateway's URL."""

    rack: str
    url: str
    #: Plain HTTP to another machine allowed for this rack (``login --insecure-http``, or stored).
    insecure_http: bool = False


@dataclass(frozen=True)
class LoginStart:
    """The answer of ``POST /auth/cli/start``.  ``loopback`` is true when the gateway will wake us."""

    auth_url: str
    state: str
    code_verifier: str
    loopback: bool = False


@dataclass(frozen=True)
class DeviceInfo:
    """What ``/auth/cli/complete`` is told about this machine. ``device_id`` must be a UUID."""

    device_id: str
    device_name: str
    device_os: str
    client_version: str


@dataclass(frozen=True)
class LoginPending:
    """``202 pending``; ``stage`` and ``mfa_methods`` come only from gateways with the extension."""

    stage: str | None = None
    mfa_methods: tuple[str, ...] = ()


@dataclass(frozen=True)
class Session:
    """A completed login (``200`` from ``/auth/cli/complete``)."""

    token: str
    email: str
    name: str | None = None
    expires_at: str | None = None
    session_id: int | None = None
    channel: str | None = None
    device_id: str | None = None
    device_name: str | None = None
    mfa_verified: bool = False
    mfa_required: bool = False
    enrollment_required: bool = False

    def __repr__(self) -> str:  # never print the token
        return f"Session(email={self.email!r}, session_id={self.session_id!r}, token=<redacted>)"


@dataclass(frozen=True)
class CallbackResult:
    """What the browser told the loopback listener: ``ok``, or an error with the gateway's text."""

    state: str
    ok: bool
    error: str | None = None
