"""Retry policy as data, turned into a tenacity ``AsyncRetrying`` that sleeps through anyio.

Only transient failures are retried: no HTTP answer at all (DNS, refused, reset, timeout), 429, and
500/502/503/504.  Waits are exponential with full jitter (``uniform(0, min(cap, initial * 2**n))``),
never below a ``Retry-After``, and never past the deadline: the policy stops instead of sleeping
beyond it.  A 429 always backs off from a floor (``rate_limit_floor``, doubling up to
``rate_limit_cap``), whatever ``Retry-After`` says: the deployed gateway sends ``Retry-After: 0``,
and retrying at once is what starves the user's own browser of the per-IP budget.
``RetryPolicy.instant()`` is the testing switch: the same decisions with no waiting, so tests assert
attempt counts, not durations.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import anyio
import tenacity

from rgw import trace
from rgw.errors import GatewayError, GatewayUnreachable

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, GatewayUnreachable):
        return True
    return isinstance(exc, GatewayError) and exc.status in TRANSIENT_STATUSES


def is_rate_limited(exc: BaseException | None) -> bool:
    return isinstance(exc, GatewayError) and exc.status == 429


def failure_kind(exc: BaseException) -> str:
    """``unreachable`` (no answer), ``rate_limited`` (429) or ``gateway_error`` (it answered badly)."""
    if isinstance(exc, GatewayUnreachable):
        return "unreachable"
    if is_rate_limited(exc):
        return "rate_limited"
    return "gateway_error"


def describe_failure(exc: BaseException) -> str:
    """A few words for a progress line: ``DNS lookup failed``, ``HTTP 503``, ``HTTP 429``."""
    if isinstance(exc, GatewayUnreachable):
        return exc.cause_text
    if isinstance(exc, GatewayError) and exc.status is not None:
        return f"HTTP {exc.status}"
    return str(exc)


@dataclass(frozen=True)
class RetryAttempt:
    """Handed to ``on_retry`` before each wait: attempt number (1-based), wait, and the failure."""

    attempt: int
    delay: float
    error: BaseException


#: Seconds a try needs at least: none is started closer than this to the deadline.
MIN_TRY = 0.25


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 0.2
    cap: float = 5.0
    max_attempts: int | None = None
    #: The shortest wait after a 429, and how far its doubling goes.
    rate_limit_floor: float = 1.0
    rate_limit_cap: float = 16.0
    #: Jitter source, replaceable for reproducible tests.
    rng: Callable[[float, float], float] = random.uniform
    sleep_enabled: bool = True

    @classmethod
    def instant(cls, max_attempts: int | None = None) -> RetryPolicy:
        return cls(initial=0.0, cap=0.0, max_attempts=max_attempts, sleep_enabled=False)

    def with_attempts(self, max_attempts: int | None) -> RetryPolicy:
        return replace(self, max_attempts=max_attempts)

    def compute_wait(self, attempt: int, error: BaseException | None) -> float:
        """The wait before retry ``attempt + 1`` (``attempt`` is 1-based) after ``error``."""
        growth = 2 ** max(0, attempt - 1)
        if is_rate_limited(error):
            # Exponential with jitter above the floor: [floor, floor*2^n], capped.
            ceiling = max(self.rate_limit_floor, min(self.rate_limit_cap, self.rate_limit_floor * 2 * growth))
            wait = self.rng(self.rate_limit_floor, ceiling)
        else:
            ceiling = min(self.cap, self.initial * growth)
            wait = self.rng(0.0, ceiling) if ceiling > 0 else 0.0
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            wait = max(wait, min(float(retry_after), max(self.cap, self.rate_limit_cap, 1.0) * 6))
        return wait if self.sleep_enabled else 0.0

    def retrying(
        self,
        *,
        deadline: float | None = None,
        on_retry: Callable[[RetryAttempt], None] | None = None,
        retry_if: Callable[[BaseException], bool] = is_transient,
    ) -> tenacity.AsyncRetrying:
        """A tenacity loop: ``async for attempt in policy.retrying(...): with attempt: ...``.

        ``deadline`` is an ``anyio.current_time()`` value; a wait that would end past it stops the
        loop and re-raises the last error.  ``retry_if`` narrows what is retried (a request that may
        have reached the server is retried only when it provably did not).
        """

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.compute_wait(state.attempt_number, error)

        def stop(state: tenacity.RetryCallState) -> bool:
            if self.max_attempts is not None and state.attempt_number >= self.max_attempts:
                trace.debug(
                    "retry: giving up after attempt %d (%d attempts at most)", state.attempt_number, self.max_attempts
                )
                return True
            if deadline is None:
                return False
            upcoming = state.upcoming_sleep or 0.0
            # A try that would start with less than MIN_TRY left could only be cut short by the
            # deadline, and its "timed out" would replace the real failure (connection refused).
            if anyio.current_time() + upcoming + MIN_TRY >= deadline:
                trace.debug(
                    "retry: giving up after attempt %d (the next try would end past the deadline)", state.attempt_number
                )
                return True
            return False

        def decide(exc: BaseException) -> bool:
            retry = retry_if(exc)
            if not retry:
                why = "may have reached the gateway" if is_transient(exc) else "not a transient failure"
                trace.debug("retry: %s is not retried (%s)", describe_failure(exc), why)
            return retry

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if state.outcome is None:
                return
            error = state.outcome.exception()
            if error is None:
                return
            delay = state.upcoming_sleep or 0.0
            trace.debug(
                "retry: attempt %d failed (%s); next in %.2f s", state.attempt_number, describe_failure(error), delay
            )
            if on_retry is not None:
                on_retry(RetryAttempt(state.attempt_number, delay, error))

        async def sleep(seconds: float) -> None:
            if seconds > 0:
                await anyio.sleep(seconds)

        return tenacity.AsyncRetrying(
            sleep=sleep,
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(decide),
            before_sleep=before_sleep,
            reraise=True,
        )
