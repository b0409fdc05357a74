"""RetryPolicy: what is retried, how long it waits, and that it stops at the deadline."""

from __future__ import annotations

import pytest

from rgw.deadline import within
from rgw.errors import GatewayError, GatewayUnreachable, LoginError
from rgw.retry import RetryAttempt, RetryPolicy, cannot_heal, is_transient

pytestmark = pytest.mark.anyio


def test_transient_classification() -> None:
    assert is_transient(GatewayUnreachable("x", cause="reset"))
    for status in (429, 500, 502, 503, 504):
        assert is_transient(GatewayError("x", status=status))
    assert not is_transient(GatewayError("x", status=400))
    assert not is_transient(LoginError("x"))


def test_full_jitter_exponential_capped_and_retry_after() -> None:
    policy = RetryPolicy(initial=0.5, cap=4.0, rng=lambda low, high: high)
    assert [policy.compute_wait(n, None) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.compute_wait(1, GatewayError("x", status=429, retry_after=3.0)) == 3.0
    low = RetryPolicy(initial=0.5, cap=4.0, rng=lambda low, high: low)
    assert low.compute_wait(3, None) == 0.0


async def test_retries_transient_until_success_and_reports_attempts() -> None:
    calls = 0
    seen: list[RetryAttempt] = []

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise GatewayError("unavailable", status=503)
        return "ok"

    result = await RetryPolicy.instant().call(flaky, on_retry=seen.append)
    assert result == "ok"
    assert calls == 4
    assert [a.attempt for a in seen] == [1, 2, 3]


async def test_terminal_errors_are_not_retried() -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise LoginError("email domain not allowed")

    with pytest.raises(LoginError):
        await RetryPolicy.instant().call(refused)
    assert calls == 1


async def test_max_attempts_and_deadline_stop_with_the_last_error() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise GatewayUnreachable("down", cause="refused")

    with pytest.raises(GatewayUnreachable):
        await RetryPolicy.instant(max_attempts=3).call(down)
    assert calls == 3

    calls = 0
    policy = RetryPolicy(initial=10.0, cap=10.0, rng=lambda low, high: high)
    with pytest.raises(GatewayUnreachable), within(5.0):  # the deadline is the enclosing cancel scope
        await policy.call(down)
    assert calls == 1  # the 10 s wait would end past the deadline: stop instead of sleeping


@pytest.mark.parametrize("attempt", range(1, 12))
def test_a_429_with_retry_after_zero_never_waits_below_the_floor(attempt: int) -> None:
    # The deployed gateway always sends Retry-After: 0; retrying at once starves the browser.
    error = GatewayError("rate limited", status=429, retry_after=0.0)
    for rng in (lambda low, high: low, lambda low, high: high, RetryPolicy().rng):
        policy = RetryPolicy(rng=rng)
        wait = policy.compute_wait(attempt, error)
        assert policy.rate_limit_floor <= wait <= policy.rate_limit_cap
    highest = RetryPolicy(rng=lambda low, high: high)
    if attempt < 4:  # doubling until the cap
        assert highest.compute_wait(attempt + 1, error) == 2 * highest.compute_wait(attempt, error)


def test_rate_limited_is_its_own_kind_of_failure() -> None:
    from rgw.retry import describe_failure, failure_kind

    assert failure_kind(GatewayError("x", status=429)) == "rate_limited"
    assert failure_kind(GatewayError("x", status=503)) == "gateway_error"
    assert failure_kind(GatewayUnreachable("x", cause="dns")) == "unreachable"
    assert describe_failure(GatewayError("x", status=503)) == "HTTP 503"


async def test_a_policy_for_a_new_gateway_does_not_retry_what_cannot_heal_and_a_known_ones_does() -> None:
    calls = 0

    async def no_such_name() -> None:
        nonlocal calls
        calls += 1
        raise GatewayUnreachable("no such name", cause="dns", lasting=True)

    assert cannot_heal(GatewayUnreachable("x", cause="dns", lasting=True))
    assert not cannot_heal(GatewayUnreachable("x", cause="dns"))
    with pytest.raises(GatewayUnreachable):
        await RetryPolicy.instant().for_new_gateway(10).call(no_such_name)
    assert calls == 1
    calls = 0
    with pytest.raises(GatewayUnreachable):
        await RetryPolicy.instant(max_attempts=4).call(no_such_name)
    assert calls == 4


async def test_a_policy_for_a_new_gateway_still_retries_a_failure_that_may_heal() -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise GatewayUnreachable("refused", cause="refused")

    with pytest.raises(GatewayUnreachable):
        await RetryPolicy.instant().for_new_gateway(3).call(refused)
    assert calls == 3
