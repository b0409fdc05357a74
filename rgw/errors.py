"""Every failure a user can hit, as one exception tree.

::

    RgwError                      exit 1   base; message + hint
    +-- UsageError                exit 2   bad flag or argument combination
    |   +-- InsecureGateway                plain HTTP to another machine, no opt-in
    +-- ConfigError               exit 10  config file unreadable, unsafe, or locked too long
    |   +-- ConfigCorrupt                  not JSON, or not a rack-gateway config
    |   +-- ConfigLockTimeout              another process held the lock too long
    +-- NoRackError               exit 10  no rack selected / unknown rack
    +-- AuthenticationError       exit 3   session expired or invalid (names the cause)
    |   +-- NotLoggedIn                    no session stored for the rack
    |   +-- MfaRequired                    the gateway wants (step-up) MFA for this request
    +-- PermissionDenied          exit 4   the gateway's text
    +-- GatewayUnreachable        exit 5   DNS, refused, TLS, timeout, reset
    +-- GatewayError              exit 6   unexpected status or garbage body
    +-- LoginError                exit 7   the gateway refused the login (domain, user, state)
    |   +-- LoginTimeout          exit 8   the login deadline passed
    +-- MfaError                  exit 9   MFA cannot be done here (no terminal, no key, no method)
    |   +-- MfaRejected                    the gateway refused one code (``code``: invalid_code, ...)
    |   +-- MfaFailed                      verification is over: tries used up, locked, login gone
    |       +-- SessionNotVerified         the operation needs a session that verified MFA at login
    +-- NotFound                  exit 12  the gateway knows no such API token (or other object)
    +-- PartialFailure            exit 11  some or all racks of a multi-rack command failed
    +-- Interrupted               exit 130 Ctrl-C

Every class has a default ``hint`` (what to do next), used when the place that raises it knows
nothing more specific; a test walks the tree and fails on a class without one.  Third-party
exceptions (httpx, json, OSError) are translated into these at one boundary each (``rgw.client``
for HTTP, ``rgw.config`` for the file) with ``raise ... from exc``.  The CLI turns an ``RgwError``
into ``Error: <message>`` plus the hint, and its exit code; never a traceback.
"""

from __future__ import annotations

from typing import ClassVar


class RgwError(Exception):
    """Base of every user-facing error: a message, a hint, an exit code."""

    exit_code: int = 1
    default_hint: ClassVar[str] = "Run the command again with -v to see what happened."

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(RgwError):
    exit_code = 2
    default_hint = "Run: rack-gateway --help"


class InsecureGateway(UsageError):
    """A credential would travel in clear text (plain HTTP to another machine)."""

    default_hint = "Use the gateway's https:// URL."


class ConfigError(RgwError):
    exit_code = 10
    default_hint = "Check the config directory (--config, GATEWAY_CLI_CONFIG_DIR) and its permissions."


class ConfigCorrupt(ConfigError):
    default_hint = "Fix or move the file aside; rack-gateway will not overwrite it."


class ConfigLockTimeout(ConfigError):
    default_hint = "Wait for that rack-gateway process to finish, or stop it."


class NoRackError(RgwError):
    exit_code = 10
    default_hint = "Please run: rack-gateway racks"


class AuthenticationError(RgwError):
    """The gateway rejected our credentials (HTTP 401 without an MFA signal).

    ``reason`` is the gateway's own short text (``session revoked``, ``session expired``, ...) and
    ``detail`` its human sentence when it sent one.
    """

    exit_code = 3
    default_hint = "Please run: rack-gateway login <rack> <gateway-url>"

    def __init__(
        self, message: str, *, reason: str | None = None, detail: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.detail = detail


class NotLoggedIn(AuthenticationError):
    pass


class MfaRequired(AuthenticationError):
    """A request needs (step-up) MFA: ``level`` is the X-MFA-Required value."""

    default_hint = "Run it in a terminal to be prompted, or pass --mfa-code CODE."

    def __init__(self, message: str, *, level: str, hint: str | None = None) -> None:
        super().__init__(message, reason=level, hint=hint)
        self.level = level


class PermissionDenied(RgwError):
    exit_code = 4
    default_hint = "Contact your administrator to adjust your role if needed."


class GatewayUnreachable(RgwError):
    """No HTTP answer at all. ``cause`` is one of dns, refused, tls, timeout, reset, network."""

    exit_code = 5
    default_hint = "Check your network connection. If the gateway is behind a VPN or Tailscale, check the link."

    CAUSES: ClassVar[dict[str, str]] = {
        "dns": "DNS lookup failed",
        "refused": "connection refused",
        "tls": "TLS handshake failed",
        "timeout": "timed out",
        "reset": "connection reset",
        "network": "network error",
    }

    def __init__(
        self,
        message: str,
        *,
        cause: str,
        hint: str | None = None,
        request_sent: bool = True,
        lasting: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        self.cause = cause
        #: False only when the request provably never left this machine (the connection failed):
        #: then even a request that is not safe to repeat may be retried.
        self.request_sent = request_sent
        #: A failure that does not heal by itself: the name does not exist (DNS said so), or the
        #: port speaks plain HTTP to an ``https://`` URL.  ``RetryPolicy.retry_lasting`` decides.
        self.lasting = lasting

    @property
    def cause_text(self) -> str:
        return self.CAUSES.get(self.cause, self.cause)


class GatewayError(RgwError):
    """An HTTP answer we cannot use: an unexpected status, or a body that is not what we expect."""

    exit_code = 6
    default_hint = "Check that the URL points at a rack gateway; if it does, try again later or tell its admin."

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
    default_hint = "Run the login again; if it keeps failing, contact your gateway's administrator."


class LoginStateUnknown(LoginError):
    """The gateway no longer knows this login's state (expired, or already redeemed)."""

    default_hint = "The gateway no longer knows this login: run the login again."


class LoginTimeout(LoginError):
    exit_code = 8
    default_hint = (
        "Likely causes: the browser sign-in was not finished, your email domain is not allowed on this "
        "gateway, or the consent page was cancelled. Run the login again."
    )


class MfaError(RgwError):
    exit_code = 9
    default_hint = "Pass --mfa-code CODE (a TOTP or backup code), or run the command in a terminal."


class MfaRejected(MfaError):
    """The gateway refused one MFA answer: ``code`` is its error (``invalid_code``, ...)."""

    default_hint = "Check the code and try again with a fresh one."

    def __init__(self, code: str, message: str | None, *, retry_after: float | None = None) -> None:
        super().__init__(message or code.replace("_", " "))
        self.code = code
        self.retry_after = retry_after


class MfaFailed(MfaError):
    """The verification is over (tries used up, MFA locked, the login gone): nothing else is tried."""

    default_hint = "Run the command again with a fresh code, or use a backup code."


class NotFound(RgwError):
    """The gateway knows no such thing (an API token id, say)."""

    exit_code = 12
    default_hint = "Check the id: rack-gateway api-token list shows the ones that exist."


class SessionNotVerified(MfaFailed):
    """The gateway wants a session that verified MFA when it logged in: no code can satisfy it now."""

    default_hint = "Log in again and answer the MFA prompt, then run the command again."


class PartialFailure(RgwError):
    exit_code = 11
    default_hint = "The racks that succeeded stay logged in. Run the login again for the others."


class Interrupted(RgwError):
    exit_code = 130
    default_hint = "Nothing was changed; run the command again when you are ready."


#: What to do when a gateway requires MFA and the account has none enrolled.
ENROL_HINT = "Enrol MFA (an authenticator app or a security key) in the gateway's web UI, then run it again."

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
    11: "some or all racks of a multi-rack command failed (the others stay as they are)",
    12: "not found (no such API token)",
    130: "interrupted (Ctrl-C)",
}
