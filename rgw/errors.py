"""Every failure a user can hit, as one exception tree.

::

    RgwError                      exit 1   base; message + hint
    +-- UsageError                exit 2   bad flag or argument combination
    +-- ConfigError               exit 10  config file unreadable, corrupt, or locked too long
    |   +-- ConfigCorrupt
    |   +-- ConfigLockTimeout
    +-- NoRackError               exit 10  no rack selected / unknown rack
    +-- AuthenticationError       exit 3   session expired or invalid (names the cause)
    |   +-- NotLoggedIn
    +-- PermissionDenied          exit 4   the gateway's text
    +-- GatewayUnreachable        exit 5   DNS, refused, TLS, timeout, reset
    +-- GatewayError              exit 6   unexpected status or garbage body
    +-- LoginError                exit 7   the gateway refused the login (domain, user, state)
    |   +-- LoginTimeout          exit 8   the login deadline passed
    +-- MfaError                  exit 9   MFA failed or cannot be done here
    +-- PartialFailure            exit 11  some racks of a multi-rack command failed
    +-- Interrupted               exit 130 Ctrl-C

Third-party exceptions (httpx, json, OSError) are translated into these at one boundary each
(``rgw.client`` for HTTP, ``rgw.config`` for the file) with ``raise ... from exc``.  The CLI turns
an ``RgwError`` into ``Error: <message>`` plus the hint, and its exit code; never a traceback.
"""

from __future__ import annotations

from typing import ClassVar


class RgwError(Exception):
    """Base of every user-facing error: a message, an optional hint, an exit code."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(RgwError):
    exit_code = 2


class ConfigError(RgwError):
    exit_code = 10


class ConfigCorrupt(ConfigError):
    pass


class ConfigLockTimeout(ConfigError):
    pass


class NoRackError(RgwError):
    exit_code = 10


class AuthenticationError(RgwError):
    """The gateway rejected our credentials (HTTP 401 without an MFA signal).

    ``reason`` is the gateway's own text (``session revoked``, ``session expired``, ...).
    """

    exit_code = 3

    def __init__(self, message: str, *, reason: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class NotLoggedIn(AuthenticationError):
    pass


class MfaRequired(AuthenticationError):
    """A request needs (step-up) MFA: ``level`` is the X-MFA-Required value."""

    def __init__(self, message: str, *, level: str, hint: str | None = None) -> None:
        super().__init__(message, reason=level, hint=hint)
        self.level = level


class PermissionDenied(RgwError):
    exit_code = 4


class GatewayUnreachable(RgwError):
    """No HTTP answer at all. ``cause`` is one of dns, refused, tls, timeout, reset, network."""

    exit_code = 5

    CAUSES: ClassVar[dict[str, str]] = {
        "dns": "DNS lookup failed",
        "refused": "connection refused",
        "tls": "TLS handshake failed",
        "timeout": "timed out",
        "reset": "connection reset",
        "network": "network error",
    }

    def __init__(self, message: str, *, cause: str, hint: str | None = None, request_sent: bool = True) -> None:
        super().__init__(message, hint=hint)
        self.cause = cause
        #: False only when the request provably never left this machine (the connection failed):
        #: then even a request that is not safe to repeat may be retried.
        self.request_sent = request_sent

    @property
    def cause_text(self) -> str:
        return self.CAUSES.get(self.cause, self.cause)


class GatewayError(RgwError):
    """An HTTP answer we cannot use: an unexpected status, or a body that is not what we expect."""

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after = retry_after


class LoginError(RgwError):
    exit_code = 7


class LoginTimeout(LoginError):
    exit_code = 8


class MfaError(RgwError):
    exit_code = 9


class PartialFailure(RgwError):
    exit_code = 11


class Interrupted(RgwError):
    exit_code = 130


#: Exit codes, documented in the README; kept here so the table and the code cannot drift.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "other error",
    2: "usage error (bad flag or argument)",
    3: "session expired or invalid, or not logged in",
    4: "permission denied",
    5: "gateway unreachable (DNS, connection refused, TLS, timeout)",
    6: "gateway error (unexpected status or response)",
    7: "login refused by the gateway",
    8: "login timed out",
    9: "MFA failed",
    10: "config problem (corrupt file, lock held too long, unknown rack)",
    11: "partial failure: some racks of a multi-rack command failed",
    130: "interrupted (Ctrl-C)",
}
