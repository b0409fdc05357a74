"""Retry policy as data, turned into a tenacity ``AsyncRetrying`` that sleeps through anyio.

Only transient failures are retried: no HTTP answer at all (DNS, refused, reset, timeout), 429
(honouring ``Retry-After``), and 502/503/504 and 500.  Waits are exponential with full jitter
(``uniform(0, min(cap, initial * 2**n))``), never below a ``Retry-After``, and never past the
deadline: the policy stops instead of sleeping beyond it.  ``RetryPolicy.instant()`` is the testing
switch: the same decisions with no waiting, so tests assert attempt counts, not durations.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import anyio
import tenacity

from rgw.errors import GatewayError, GatewayUnreachable

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, GatewayUnreachable):
        return True
    return isinstance(exc, GatewayError) and exc.status in TRANSIENT_STATUSES


def describe_failure(exc: BaseException) -> str:
    """A few words for a progress line: ``DNS lookup failed``, ``HTTP 503``, ``rate limited``."""
    if isinstance(exc, GatewayUnreachable):
        return exc.cause_text
    if isinstance(exc, GatewayError) and exc.status == 429:
        return "rate limited, HTTP 429"
    if isinstance(exc, GatewayError) and exc.status is not None:
        return f"HTTP {exc.status}"
    return str(exc)


@dataclass(frozen=True)
class RetryAttempt:
    """Handed to ``on_retry`` before each wait: attempt number (1-based), wait, and the failure."""

    attempt: int
    delay: float
    error: BaseException


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 0.2
    cap: float = 5.0
    max_attempts: int | None = None
    #: Jitter source, replaceable for reproducible tests.
    rng: Callable[[float, float], float] = random.uniform
    sleep_enabled: bool = True

    @classmethod
    def instant(cls, max_attempts: int | None = None) -> RetryPolicy:
        return cls(initial=0.0, cap=0.0, max_attempts=max_attempts, sleep_enabled=False)

    def with_attempts(self, max_attempts: int | None) -> RetryPolicy:
        return replace(self, max_attempts=max_attempts)

    def compute_wait(self, attempt: int, error: BaseException | None) -> float:
        ceiling = min(self.cap, self.initial * (2 ** max(0, attempt - 1)))
        wait = self.rng(0.0, ceiling) if ceiling > 0 else 0.0
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            wait = max(wait, min(float(retry_after), max(self.cap, 1.0) * 6))
        return wait if self.sleep_enabled else 0.0

    def retrying(
        self,
        *,
        deadline: float | None = None,
        on_retry: Callable[[RetryAttempt], None] | None = None,
    ) -> tenacity.AsyncRetrying:
        """A tenacity loop: ``async for attempt in policy.retrying(...): with attempt: ...``.

        ``deadline`` is an ``anyio.current_time()`` value; a wait that would end past it stops the
        loop and re-raises the last error.
        """

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.compute_wait(state.attempt_number, error)

        def stop(state: tenacity.RetryCallState) -> bool:
            if self.max_attempts is not None and state.attempt_number >= self.max_attempts:
                return True
            if deadline is None:
                return False
            upcoming = state.upcoming_sleep or 0.0
            return anyio.current_time() + upcoming >= deadline

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is None or state.outcome is None:
                return
            error = state.outcome.exception()
            if error is not None:
                on_retry(RetryAttempt(state.attempt_number, state.upcoming_sleep or 0.0, error))

        async def sleep(seconds: float) -> None:
            if seconds > 0:
                await anyio.sleep(seconds)

        return tenacity.AsyncRetrying(
            sleep=sleep,
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
