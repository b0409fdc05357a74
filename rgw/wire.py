"""What a login exchanges with a gateway: frozen dataclasses, no behaviour.

``LoginStart`` is what ``/auth/cli/start`` answers; ``LoginPending`` and ``Session`` are the two
useful answers of ``/auth/cli/complete``; ``DeviceInfo`` is what it is told about this machine;
``CallbackResult`` is what the loopback listener heard from the browser.  Also importable from
``rgw.models`` (which loads this module on first use).
"""

from __future__ import annotations

from dataclasses import dataclass


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
