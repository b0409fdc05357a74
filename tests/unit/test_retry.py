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


def _records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rgw"]


async def test_under_verbose_each_retry_tells_the_failure_the_next_wait_and_why_it_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="rgw")
    error = GatewayError("unavailable", status=503)
    seen: list[RetryAttempt] = []

    async def down() -> None:
        raise error

    policy = RetryPolicy(initial=0.01, cap=0.02, max_attempts=3, rng=lambda low, high: high)
    with pytest.raises(GatewayError):
        await policy.call(down, on_retry=seen.append)
    assert [(a.attempt, a.delay, a.error) for a in seen] == [(1, 0.01, error), (2, 0.02, error)]
    assert _records(caplog) == [
        "retry: attempt 1 failed (HTTP 503); next in 0.01 s",
        "retry: attempt 2 failed (HTTP 503); next in 0.02 s",
        "retry: giving up after attempt 3 (3 attempts at most)",
    ]


async def test_under_verbose_a_failure_not_retried_says_why(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from rgw.retry import unprocessed

    caplog.set_level(logging.DEBUG, logger="rgw")
    calls = 0

    async def fails(error: Exception) -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(GatewayError):
        await RetryPolicy.instant().call(fails, GatewayError("bad request", status=400))
    with pytest.raises(GatewayError):
        await RetryPolicy.instant().call(fails, GatewayError("boom", status=500), retry_if=unprocessed)
    assert calls == 2  # a 500 may have been processed: not retried under unprocessed
    assert _records(caplog) == [
        "retry: HTTP 400 is not retried (not a transient failure)",
        "retry: HTTP 500 is not retried (may have reached the gateway)",
    ]


@pytest.mark.parametrize(("left", "tries"), [(0.25, 3), (0.5, 3), (0.2, 1)])
async def test_a_try_starts_only_with_at_least_min_try_left_before_the_deadline(
    left: float, tries: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import rgw.retry

    caplog.set_level(logging.DEBUG, logger="rgw")
    monkeypatch.setattr(rgw.retry, "time_left", lambda: left)
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise GatewayUnreachable("down", cause="refused")

    with pytest.raises(GatewayUnreachable):
        await RetryPolicy.instant(max_attempts=3).call(down)
    assert calls == tries
    if tries == 1:
        assert _records(caplog)[-1] == "retry: giving up after attempt 1 (the next try would end past the deadline)"


async def test_every_try_gets_the_call_s_arguments() -> None:
    seen: list[tuple[str, str]] = []

    async def flaky(first: str, *, second: str) -> str:
        seen.append((first, second))
        if len(seen) < 2:
            raise GatewayError("unavailable", status=503)
        return first + second

    assert await RetryPolicy.instant().call(flaky, "a", second="b") == "ab"
    assert seen == [("a", "b"), ("a", "b")]


async def test_a_429_waits_from_the_rate_limit_floor_in_a_real_run() -> None:
    seen: list[RetryAttempt] = []
    calls = 0

    async def limited() -> str:
        nonlocal calls
        calls += 1
        if calls < 2:
            raise GatewayError("slow down", status=429)
        return "ok"

    policy = RetryPolicy(initial=0.0, rate_limit_floor=0.01, rate_limit_cap=0.02, rng=lambda low, high: low)
    assert await policy.call(limited, on_retry=seen.append) == "ok"
    assert [a.delay for a in seen] == [0.01]


async def test_the_instant_policy_adds_no_checkpoint_between_tries(monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    import rgw.retry

    # A cancelled scope leaves no time before its deadline: without this the policy stops first.
    monkeypatch.setattr(rgw.retry, "time_left", lambda: float("inf"))

    calls = 0

    async def flaky() -> str:  # no checkpoint of its own
        nonlocal calls
        calls += 1
        if calls < 3:
            raise GatewayError("unavailable", status=503)
        return "ok"

    result = None
    with anyio.CancelScope() as scope:
        scope.cancel()
        result = await RetryPolicy.instant().call(flaky)
    assert (result, calls) == ("ok", 3)


async def test_a_real_wait_however_short_is_a_checkpoint_a_cancel_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    import rgw.retry

    # A cancelled scope leaves no time before its deadline: without this the policy stops first.
    monkeypatch.setattr(rgw.retry, "time_left", lambda: float("inf"))

    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise GatewayError("unavailable", status=503)

    with anyio.CancelScope() as scope:
        scope.cancel()
        await RetryPolicy(initial=0.01, cap=0.01, max_attempts=3).call(down)
    assert calls == 1


def test_a_policy_without_initial_wait_retries_at_once_and_instant_never_waits() -> None:
    assert RetryPolicy(initial=0.0, cap=0.0).compute_wait(1, None) == 0.0
    assert RetryPolicy.instant().compute_wait(1, GatewayError("slow down", status=429, retry_after=30)) == 0.0


@pytest.mark.parametrize(
    ("policy", "longest"),
    [
        (RetryPolicy(), 96.0),  # six times the 16 s rate-limit cap
        (RetryPolicy(cap=20.0), 120.0),  # six times the longer of the two caps
        (RetryPolicy(cap=0.5, rate_limit_floor=0.5, rate_limit_cap=0.5), 6.0),  # never below six seconds
    ],
)
def test_retry_after_is_honoured_up_to_six_times_the_longest_cap(policy: RetryPolicy, longest: float) -> None:
    low = RetryPolicy(**{**policy.__dict__, "rng": lambda low, high: low})
    assert low.compute_wait(1, GatewayError("x", status=503, retry_after=1000)) == longest
    assert low.compute_wait(1, GatewayError("x", status=503, retry_after=0.5)) == 0.5


def test_a_failure_without_a_status_is_described_by_its_message() -> None:
    from rgw.retry import describe_failure

    assert describe_failure(LoginError("email domain not allowed")) == "email domain not allowed"
    assert (
        describe_failure(GatewayUnreachable("down", cause="refused"))
        == GatewayUnreachable("d", cause="refused").cause_text
    )


def test_unprocessed_is_a_connection_that_sent_nothing_a_429_or_a_503_only() -> None:
    from rgw.retry import unprocessed

    assert unprocessed(GatewayUnreachable("down", cause="refused", request_sent=False))
    assert not unprocessed(GatewayUnreachable("reset", cause="reset", request_sent=True))
    assert unprocessed(GatewayError("slow down", status=429))
    assert unprocessed(GatewayError("front refused", status=503))
    for status in (500, 502, 504, 400, 430):
        assert not unprocessed(GatewayError("x", status=status))
    assert not unprocessed(LoginError("x"))


def test_the_policy_for_a_new_gateway_changes_only_the_tries_and_lasting_failures() -> None:
    policy = RetryPolicy(initial=0.3, cap=3.0)
    assert policy.for_new_gateway(4) == RetryPolicy(initial=0.3, cap=3.0, max_attempts=4, retry_lasting=False)
    assert policy.for_new_gateway(None).max_attempts is None
