"""Plain data the library passes around: frozen dataclasses, no behaviour beyond parsing.

``RackConfig`` is one entry of ``config.json``'s ``gateways``; ``LoginRequest`` a rack to log in to.
The answers of a login (``LoginStart``, ``LoginPending``, ``Session``, ``DeviceInfo``,
``CallbackResult``) live in ``rgw.wire`` and are importable from here as well: they are loaded on
first use, because every dataclass costs a millisecond or so to create and local commands
(``racks``, ``status --offline``) need none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rgw.wire import CallbackResult, DeviceInfo, LoginPending, LoginStart, Session

__all__ = [
    "DEFAULT_PARALLEL",
    "EARLIEST",
    "LATEST",
    "REJECTED_FIELD",
    "CallbackResult",
    "DeviceInfo",
    "LoginPending",
    "LoginRequest",
    "LoginStart",
    "RackConfig",
    "Session",
    "parse_time",
    "stamp_within",
    "time_text",
]

#: A rack entry's note that the gateway rejected its session (the Go CLI ignores unknown fields).
REJECTED_FIELD = "session_rejected"

_WIRE = frozenset({"CallbackResult", "DeviceInfo", "LoginPending", "LoginStart", "Session"})


def __getattr__(name: str) -> Any:
    """``from rgw.models import Session``: the login answers, loaded from ``rgw.wire`` on first use."""
    if name in _WIRE:
        from rgw import wire

        return getattr(wire, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The times rgw computes with.  A gateway's (or a file's) time outside them is "unknown": never
#: stored, never shown as a date, never a traceback (``9999-12-31T23:59:59-01:00`` is in year 10000
#: once in UTC, beyond what ``datetime`` holds).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
#: Longer than any RFC 3339 timestamp with nanoseconds and an offset: not a time.
_MAX_TIME_TEXT = 64


def parse_time(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp (``Z`` or offset) into UTC; ``None`` when unparsable or out of range.

    The one parser of every time a gateway or a file gives rgw: whatever it returns is between
    ``EARLIEST`` and ``LATEST``, so any arithmetic or formatting on it works.
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_TIME_TEXT:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return parsed if EARLIEST <= parsed < LATEST else None


def stamp_within(value: object, now: float, *, behind: float, ahead: float) -> float | None:
    """An epoch-seconds stamp from a state file, if it lies after ``now - behind`` and at most ``ahead``
    after ``now``; ``None`` otherwise.

    The one reader of the times rgw's own files keep (the MFA ledger, the request budget, a pending
    login): a bool, ``NaN``, an infinity, an integer too large for a float or a time years away
    (planted, corrupt, or a clock that stepped) is dropped, never obeyed, compared or formatted.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # Compared before any conversion: an int of 400 digits compares exactly, float() would overflow.
    return float(value) if now - behind < value <= now + ahead else None  # NaN compares False


def time_text(value: object) -> str | None:
    """``value`` as given when ``parse_time`` accepts it, else ``None``: a time fit to store or print as JSON."""
    return value if isinstance(value, str) and parse_time(value) is not None else None


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
    def in_keyring(self) -> bool:
        """The session's token is kept in the OS keyring (``rgw.secrets``), fetched only when used."""
        from rgw.secrets import KEYRING, STORAGE_FIELD

        return self.extra.get(STORAGE_FIELD) == KEYRING

    @property
    def logged_in(self) -> bool:
        return bool(self.token) or self.in_keyring

    @property
    def rejected(self) -> str | None:
        """Why the gateway last rejected this session (None: it has not, as far as we saw)."""
        note = self.extra.get(REJECTED_FIELD)
        if isinstance(note, dict) and self.logged_in:
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
