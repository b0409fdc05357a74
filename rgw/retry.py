"""Retry policy as data; ``policy.call(fn, ...)``, the one way rgw retries, runs tenacity with it.

Only transient failures are retried: no HTTP answer at all (DNS, refused, reset, timeout), 429, and
500/502/503/504.  Two of those do not heal by themselves (``GatewayUnreachable.lasting``: DNS says the
name does not exist; an ``https://`` URL's port answers in plain HTTP): a policy ``for_new_gateway``
(a URL never used before) does not retry them, the user hears at once to check the URL; a rack whose
gateway answered before keeps retrying them (a VPN that is down makes its names vanish).
Waits are exponential with full jitter (``uniform(0, min(cap, initial * 2**n))``),
never below a ``Retry-After``, and never past the deadline (the enclosing cancel scope's, see
``rgw.deadline``): the policy stops instead of sleeping beyond it.  A 429 always backs off from a
floor (``rate_limit_floor``, doubling up to ``rate_limit_cap``), whatever ``Retry-After`` says:
the deployed gateway sends ``Retry-After: 0``, and retrying at once is what starves the user's own
browser of the per-IP budget.
``RetryPolicy.instant()`` is the testing switch: the same decisions with no waiting, so tests assert
attempt counts, not durations.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
import tenacity

from rgw import trace
from rgw.deadline import time_left
from rgw.errors import GatewayError, GatewayUnreachable

T = TypeVar("T")

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
    #: Whether failures that do not heal by themselves (``cannot_heal``) are retried.
    retry_lasting: bool = True

    @classmethod
    def instant(cls, max_attempts: int | None = None) -> RetryPolicy:
        return cls(initial=0.0, cap=0.0, max_attempts=max_attempts, sleep_enabled=False)

    def for_new_gateway(self, max_attempts: int | None) -> RetryPolicy:
        """The policy for a URL never used before: at most ``max_attempts`` tries, and none after a
        failure that cannot heal (a typo in the name or the scheme stays a typo)."""
        return replace(self, max_attempts=max_attempts, retry_lasting=False)

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

    async def call(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        on_retry: Callable[[RetryAttempt], None] | None = None,
        retry_if: Callable[[BaseException], bool] = is_transient,
        **kwargs: Any,
    ) -> T:
        """``await policy.call(fn, *args)``: the one way rgw retries; the last error is re-raised.

        Tries stop at ``max_attempts``, or when the next one would start with less than ``MIN_TRY``
        left before the enclosing deadline (``rgw.deadline``).  ``retry_if`` narrows what is
        retried (``unprocessed``: a request that may have reached the server is retried only when
        it provably did not).
        """
        result: T = await self.retrying(on_retry=on_retry, retry_if=retry_if)(fn, *args, **kwargs)
        return result

    def retrying(
        self,
        *,
        on_retry: Callable[[RetryAttempt], None] | None = None,
        retry_if: Callable[[BaseException], bool] = is_transient,
    ) -> tenacity.AsyncRetrying:
        """The tenacity engine behind ``call``: the policy's stop, wait and retry combinators."""
        limit = [] if self.max_attempts is None else [_StopAfter(self.max_attempts)]

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if error is None:
                return
            delay = state.upcoming_sleep
            trace.debug(
                "retry: attempt %d failed (%s); next in %.2f s", state.attempt_number, describe_failure(error), delay
            )
            if on_retry is not None:
                on_retry(RetryAttempt(state.attempt_number, delay, error))

        return tenacity.AsyncRetrying(
            sleep=_sleep,
            stop=tenacity.stop_any(*limit, _StopBeforeDeadline()),
            wait=self._wait,
            retry=tenacity.retry_if_exception(_Narrowed(retry_if, retry_lasting=self.retry_lasting)),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return self.compute_wait(state.attempt_number, error)


def cannot_heal(exc: BaseException) -> bool:
    """A failure no retry mends by itself (``GatewayUnreachable.lasting``): a name DNS says does not
    exist, an ``https://`` URL's port answering in plain HTTP."""
    return isinstance(exc, GatewayUnreachable) and exc.lasting


def unprocessed(exc: BaseException) -> bool:
    """A failure after which the gateway provably did not process the request, so it may be resent.

    The connection failed before a byte was sent, or the gateway answered 429 (rate limited) or 503
    (its front refused it).  A request that is not safe to repeat (an MFA code: the same code twice
    counts as a failure) is retried only then.
    """
    if isinstance(exc, GatewayUnreachable):
        return not exc.request_sent
    return isinstance(exc, GatewayError) and exc.status in (429, 503)


class _StopAfter(tenacity.stop.stop_base):
    """``stop_after_attempt`` that says so under ``-v``."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number < self.attempts:
            return False
        trace.debug("retry: giving up after attempt %d (%d attempts at most)", state.attempt_number, self.attempts)
        return True


class _StopBeforeDeadline(tenacity.stop.stop_base):
    """Stop when the next try would start with less than ``MIN_TRY`` left before the deadline.

    Such a try could only be cut short by the deadline, and its "timed out" would replace the real
    failure (connection refused).
    """

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        if time_left() >= (state.upcoming_sleep or 0.0) + MIN_TRY:
            return False
        trace.debug(
            "retry: giving up after attempt %d (the next try would end past the deadline)", state.attempt_number
        )
        return True


class _Narrowed:
    """``retry_if`` (and the policy's ``retry_lasting``), saying under ``-v`` why a failure is not retried."""

    def __init__(self, retry_if: Callable[[BaseException], bool], *, retry_lasting: bool = True) -> None:
        self.retry_if = retry_if
        self.retry_lasting = retry_lasting

    def __call__(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception):
            return False  # cancelled (a deadline, Ctrl-C, another rack won): no failure, nothing to say
        if self.retry_if(exc) and (self.retry_lasting or not cannot_heal(exc)):
            return True
        if cannot_heal(exc) and not self.retry_lasting:
            why = "it does not heal by itself, and this URL never answered before"
        elif is_transient(exc):
            why = "may have reached the gateway"
        else:
            why = "not a transient failure"
        trace.debug("retry: %s is not retried (%s)", describe_failure(exc), why)
        return False


async def _sleep(seconds: float) -> None:
    if seconds > 0:  # the instant policy: no checkpoint between tries, as without a policy
        await anyio.sleep(seconds)
