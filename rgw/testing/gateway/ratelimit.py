"""The deployed gateway's rate limit on its authentication routes, modelled exactly.

The Go server (`internal/gateway/ratelimit/ratelimit.go`, `middleware/rate_limit.go`) keeps one
token bucket per client IP (golang.org/x/time/rate: full at first, refilled at `per_second`, at most
`burst`) in each limiter, and builds a separate limiter for each route group that uses it: the login
routes (`/auth/cli/*` and `/auth/web/*` share one), `/auth/mfa/*`, and `POST /api-tokens`.  So a client
has three independent budgets.  The client IP is the first `X-Forwarded-For` entry, else `X-Real-IP`,
else the peer address.  Allowed requests carry no rate-limit headers; a refused one gets `429` with
`Retry-After: int(1/rate)`, `X-RateLimit-Limit: int(rate)`, `X-RateLimit-Remaining: 0`,
`X-RateLimit-Reset: <unix time + 1 s>` and a fixed JSON body.  Time comes from the settings' clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from starlette.responses import Response

#: Route groups, each with its own limiter (as in the Go router).
LOGIN = "login"  # /api/v1/auth/cli/* and /api/v1/auth/web/*
MFA = "mfa"  # /api/v1/auth/mfa/*
TOKEN_CREATE = "api-token-create"  # POST /api/v1/api-tokens
GROUPS = (LOGIN, MFA, TOKEN_CREATE)

# Clock readings are floats of a Unix time (about 2.4e-7 s apart): a token is whole within this much,
# so advancing a test clock by exactly 0.1 s refills exactly one token at 10/s.
EPSILON = 1e-4
BODY = b'{"error":"rate limit exceeded","message":"too many authentication attempts, please try again later"}'


def client_ip(headers: Mapping[str, str], peer: str) -> str:
    """The key of a request's bucket: the first X-Forwarded-For entry, else X-Real-IP, else the peer."""
    forwarded = headers.get("x-forwarded-for", "")
    if forwarded:
        return forwarded.split(",", 1)[0].strip()
    real = headers.get("x-real-ip", "")
    if real:
        return real.strip()
    return peer


class RateLimiter:
    """Token buckets per (route group, client IP); thread-safe."""

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float]) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def allow(self, group: str, ip: str) -> bool:
        """Take one token from `ip`'s bucket in `group`; False when it is empty."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get((group, ip), (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.per_second)
            allowed = tokens >= 1.0 - EPSILON
            self._buckets[(group, ip)] = (max(0.0, tokens - 1.0) if allowed else tokens, max(now, last))
        return allowed

    def refusal(self) -> Response:
        """The deployed gateway's 429, byte for byte."""
        headers = {
            "Retry-After": str(int(1 / self.per_second)),
            "X-RateLimit-Limit": str(int(self.per_second)),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(self._clock() + 1)),
        }
        return Response(BODY, 429, headers=headers, media_type="application/json")
