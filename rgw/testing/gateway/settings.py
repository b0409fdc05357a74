"""Settings of the reference gateway.

`GatewaySettings` is plain data: every field has a default, durations are in seconds, and the clock
is injectable so expiry tests move time instead of waiting for it.  `extensions=False` turns off
every [ext] feature of PROTOCOL.md so the gateway behaves like a deployed Go gateway.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

DAY = 86400.0


@dataclass
class GatewaySettings:
    """Configuration of one reference gateway (all durations in seconds)."""

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
    rate_limit: tuple[float, int] | None = None
    clock: Callable[[], float] = field(default=time.time)

    def allowed_domains(self) -> list[str]:
        """The allowed email domains, lower-cased; empty means any domain."""
        if not self.allowed_domain:
            return []
        return [d.strip().lower().lstrip("@") for d in self.allowed_domain.split(",") if d.strip()]

    def domain_allowed(self, email: str) -> bool:
        domains = self.allowed_domains()
        if not domains:
            return True
        _, _, domain = email.rpartition("@")
        return domain.lower() in domains
