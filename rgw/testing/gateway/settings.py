"""Settings of the reference gateway.

`GatewaySettings` is plain data: every field has a default, durations are in seconds, and the clock
is injectable so expiry tests move time instead of waiting for it.  `extensions=False` turns off
every [ext] feature of PROTOCOL.md so the gateway behaves like a deployed Go gateway; that includes
the deployed gateway's rate limit, which is on by default only in that mode.  `oidc_issuer` replaces
the built-in sign-in page with a real OpenID Connect provider (see `oidc.py`).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

DAY = 86400.0

#: The deployed gateway's limit on its authentication routes: 10 requests/s per client IP, burst 20
#: (RATE_LIMIT_RPS / RATE_LIMIT_BURST in the Go server).
DEPLOYED_RATE_LIMIT: tuple[float, int] = (10.0, 20)


class Default(enum.Enum):
    """The marker of a setting whose default depends on other settings."""

    FOR_MODE = "for-mode"


@dataclass
class GatewaySettings:
    """Configuration of one reference gateway (all durations in seconds).

    `rate_limit` is `(per_second, burst)` or None (off); left out, it is `DEPLOYED_RATE_LIMIT` with
    `extensions=False` and off with extensions, resolved when the settings are made.
    """

    db_path: str = ":memory:"
    allowed_domain: str | None = "example.com"
    extensions: bool = True
    secret: str = "rgw-dev-secret"
    session_ttl: float = 90 * DAY
    inactivity_timeout: float = 30 * DAY
    rack_name: str = "dev"
    seed: bool = True
    step_up_window: float = 600.0
    long_poll_max: float = 25.0
    idempotent_window: float = 60.0
    rate_limit: tuple[float, int] | Literal[Default.FOR_MODE] | None = Default.FOR_MODE
    clock: Callable[[], float] = field(default=time.time)
    #: The built-in sign-in page remembers who signed in (a cookie signed with `secret`) and signs the
    #: same browser in again without a click, as an identity provider with a session does.
    remember_sign_in: bool = False
    #: Sign in through this OpenID Connect provider (its issuer URL) instead of the built-in page.
    oidc_issuer: str | None = None
    oidc_client_id: str = "rack-gateway"
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid email profile"
    #: Seconds each request to the provider (discovery, keys, token exchange) may take.
    oidc_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.rate_limit is Default.FOR_MODE:
            self.rate_limit = None if self.extensions else DEPLOYED_RATE_LIMIT
        elif self.rate_limit is not None:
            per_second, burst = self.rate_limit
            if per_second <= 0 or burst < 1:
                raise ValueError(f"rate_limit must be (per_second > 0, burst >= 1), not {self.rate_limit!r}")
            self.rate_limit = (float(per_second), int(burst))

    def rate_limit_value(self) -> tuple[float, int] | None:
        """The resolved `rate_limit`: `(per_second, burst)` or None."""
        return None if self.rate_limit is Default.FOR_MODE else self.rate_limit

    def allowed_domains(self) -> list[str]:
        """The allowed email domains, lower-cased; empty means any domain."""
        if not self.allowed_domain:
            return []
        return [d.strip().lower().lstrip("@") for d in self.allowed_domain.split(",") if d.strip()]

    def domain_allowed(self, email: str, hosted_domain: str | None = None) -> bool:
        """Whether `email` may sign in: its domain is allowed, and so is the account's Workspace
        domain (`hd` in a Google ID token) when the provider names one."""
        domains = self.allowed_domains()
        if not domains:
            return True
        _, _, domain = email.rpartition("@")
        if hosted_domain is not None and hosted_domain.lower() not in domains:
            return False
        return domain.lower() in domains
