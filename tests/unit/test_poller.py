"""LoginPoller on its own: the pace while pending, the backoff on failures, wake-ups, the end.

The gateway is an ``httpx.MockTransport`` handler that answers from a script and notes the
(virtual) time of every request; trio's ``MockClock`` with autojump makes every wait (the pace, the
backoff, a held long poll, the deadline) take no real time, so the tests assert the exact times of
the requests.  Behaviours that do not depend on time run on both backends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from trio.testing import MockClock

from rgw.client import GatewayClient
from rgw.deadline import within
from rgw.errors import GatewayError, LoginError, LoginStateUnknown
from rgw.login import events as ev
from rgw.login.poller import LoginPoller, Wakeup
from rgw.models import LoginPending, LoginStart, Session
from rgw.retry import RetryPolicy
from tests.integration.flowkit import Recorder, device_on

pytestmark = pytest.mark.anyio

URL = "https://gw.example.com"
START = LoginStart(auth_url=f"{URL}/sign-in?state=s1", state="s1", code_verifier="v1")
#: The real policy with its longest waits (no jitter): 0.2, 0.4, 0.8 ... seconds.
POLICY = RetryPolicy(rng=lambda low, high: high)

SESSION = httpx.Response(200, json={"token": "rgw_sess_polled", "email": "dev@example.com"})
PENDING = httpx.Response(202, json={"status": "pending"})


def pending(stage: str) -> httpx.Response:
    return httpx.Response(202, json={"status": "pending", "stage": stage})


def refused(text: str) -> httpx.Response:
    return httpx.Response(401, json={"error": "login_failed", "message": text})


UNAVAILABLE = httpx.Response(503, text="unavailable")


@dataclass
class Gateway:
    """Answers ``/complete`` from ``script`` in order (the last answer repeats); notes each request."""

    script: list[httpx.Response]
    #: Seconds a long poll is held when it asks to be (a gateway with the extensions).
    hold: Callable[[float], float] = lambda wait: 0.0
    times: list[float] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.times.append(round(anyio.current_time() - self.started, 6))
        body = json.loads(request.content)
        self.bodies.append(body)
        answer = self.script[min(len(self.times), len(self.script)) - 1]
        if "wait" in body:
            await anyio.sleep(self.hold(body["wait"]))
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def __post_init__(self) -> None:
        self.started = anyio.current_time()


def poller(gateway: Gateway, recorder: Recorder | None = None, **kwargs: Any) -> LoginPoller:
    client = GatewayClient(URL, transport=httpx.MockTransport(gateway.handler))
    options: dict[str, Any] = {"policy": POLICY, "long_poll": 0, "pace": 1.0, **kwargs}
    return LoginPoller(client, START, device_on("laptop"), rack="dev", emit=recorder or Recorder(), **options)


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """``virtual``: trio with an autojump ``MockClock``; else the backend named."""
    if request.param == "virtual":
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return request.param


virtual_time = pytest.mark.parametrize("anyio_backend", ["virtual"], indirect=True)
both_backends = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"], indirect=True)


@virtual_time
async def test_pending_is_polled_at_a_steady_pace_until_the_session() -> None:
    gateway = Gateway([PENDING, PENDING, PENDING, SESSION])
    seen: list[LoginPending] = []

    async def on_pending(answer: LoginPending) -> None:
        seen.append(answer)

    the_poller = poller(gateway, pace=1.0)
    session = await the_poller.poll_until_complete(on_pending)
    assert isinstance(session, Session)
    assert session.token == "rgw_sess_polled"
    assert gateway.times == [0.0, 1.0, 2.0, 3.0]
    assert the_poller.requests == 4
    assert seen == [LoginPending(stage=None, mfa_methods=())] * 3
    assert all("wait" not in body for body in gateway.bodies)  # long polling off: never asks to be held


@virtual_time
async def test_a_long_polling_gateway_is_asked_again_at_once_after_it_held_the_request() -> None:
    gateway = Gateway([pending("browser"), pending("mfa"), SESSION], hold=lambda wait: 5.0)
    with within(60):
        session = await poller(gateway, long_poll=25).poll_until_complete()
    assert session.email == "dev@example.com"
    assert gateway.times == [0.0, 5.0, 10.0]  # each poll held 5 s, then the next at once: no pace
    assert [b["wait"] for b in gateway.bodies] == [25, 25, 25]
    assert [b["stage"] for b in gateway.bodies] == ["browser", "browser", "mfa"]  # where it last saw the login


@virtual_time
async def test_a_long_poll_never_asks_the_gateway_to_hold_past_the_deadline() -> None:
    gateway = Gateway([pending("browser"), SESSION], hold=lambda wait: wait)
    with within(10):
        await poller(gateway, long_poll=25).poll_until_complete()
    assert gateway.bodies[0]["wait"] == 9.0  # the time left, less a second for the answer to arrive
    assert gateway.times == [0.0, 9.0]


@virtual_time
async def test_transient_failures_back_off_and_a_pending_answer_resets_the_count() -> None:
    gateway = Gateway([UNAVAILABLE, UNAVAILABLE, PENDING, UNAVAILABLE, SESSION])
    recorder = Recorder()
    await poller(gateway, recorder, pace=1.0).poll_until_complete()
    # Backoff 0.2 s, then 0.4 s; pending: the steady pace (1 s from the poll's start, its retries
    # included: a failure never slows the pace); then the backoff starts anew.
    assert gateway.times == [0.0, 0.2, 0.6, 1.0, 1.2]
    retries = [e for e in recorder.events if isinstance(e, ev.GatewayRetry)]
    assert [(e.attempt, round(e.delay, 6), e.error, e.kind) for e in retries] == [
        (1, 0.2, "HTTP 503", "gateway_error"),
        (2, 0.4, "HTTP 503", "gateway_error"),
        (1, 0.2, "HTTP 503", "gateway_error"),
    ]


@virtual_time
async def test_a_wake_cuts_the_pace_short() -> None:
    gateway = Gateway([PENDING, PENDING, SESSION])
    wake = Wakeup()

    async def browser_comes_back() -> None:
        await anyio.sleep(2.5)
        wake.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(browser_comes_back)
        await poller(gateway, pace=10.0, wake=wake).poll_until_complete()
    assert gateway.times == [0.0, 2.5, 12.5]  # woken at 2.5 s instead of waiting the 10 s pace


@virtual_time
async def test_the_first_poll_of_a_gateway_without_extensions_waits_a_pace_unless_woken() -> None:
    gateway = Gateway([SESSION])
    await poller(gateway, first_wait=1.0).poll_until_complete()
    assert gateway.times == [1.0]
    woken = Gateway([SESSION])
    wake = Wakeup()
    wake.set()  # a pasted URL arrived before the first poll
    await poller(woken, first_wait=1.0, wake=wake).poll_until_complete()
    assert woken.times == [0.0]


@virtual_time
async def test_pending_forever_ends_with_the_deadline_and_failures_with_the_last_error() -> None:
    gateway = Gateway([PENDING])
    with within(5) as scope:
        await poller(gateway, pace=1.0).poll_until_complete()
    assert scope.cancelled_caught
    assert gateway.times == [0.0, 1.0, 2.0, 3.0, 4.0]
    down = Gateway([UNAVAILABLE])
    started = anyio.current_time()
    with pytest.raises(GatewayError) as info, within(5):
        await poller(down).poll_until_complete()
    assert info.value.status == 503  # the real failure, not a timeout
    assert anyio.current_time() - started <= 5
    assert down.times == [0.0, 0.2, 0.6, 1.4, 3.0]  # the next try (at 6.2 s) would end past the deadline


@both_backends
@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (refused("email domain not allowed: eve@evil.com"), LoginError, "email domain not allowed"),
        (httpx.Response(400, json={"error": "invalid or expired state"}), LoginStateUnknown, "invalid or expired"),
        (httpx.Response(403, json={"error": "user not authorized"}), LoginError, "user not authorized"),
    ],
)
async def test_a_terminal_answer_ends_polling_at_once(answer: httpx.Response, error: type, text: str) -> None:
    gateway = Gateway([PENDING, answer])
    recorder = Recorder()
    with pytest.raises(error) as info:
        await poller(gateway, recorder, policy=RetryPolicy.instant(), pace=0.0).poll_until_complete()
    assert text in str(info.value)
    assert len(gateway.times) == 2  # not retried
    assert recorder.of(ev.GatewayRetry) == []


@both_backends
async def test_poll_once_is_retried_and_never_held() -> None:
    gateway = Gateway([UNAVAILABLE, pending("browser")], hold=lambda wait: 1000.0)
    answer = await poller(gateway, policy=RetryPolicy.instant(), long_poll=25).poll_once()
    assert answer == LoginPending(stage="browser", mfa_methods=())
    assert len(gateway.times) == 2
    assert all("wait" not in body for body in gateway.bodies)


# -- issue 24: the defaults, the held stage, the hot-loop guard, the deadline's last second, wakes


@virtual_time
async def test_by_default_pending_is_asked_to_be_held_25_seconds_and_polled_once_a_second() -> None:
    # A gateway that holds each poll half a second but reports no stage (no long polling): the pace.
    gateway = Gateway([PENDING, PENDING, SESSION], hold=lambda wait: 0.5)
    client = GatewayClient(URL, transport=httpx.MockTransport(gateway.handler))
    with within(100):
        await LoginPoller(
            client, START, device_on("laptop"), rack="dev", emit=Recorder(), policy=POLICY
        ).poll_until_complete()
    assert [b["wait"] for b in gateway.bodies] == [25, 25, 25]
    assert gateway.times == [0.0, 1.0, 2.0]


@virtual_time
async def test_a_resumed_login_s_first_poll_is_held_at_the_stage_it_was_last_seen_at() -> None:
    gateway = Gateway([pending("mfa"), SESSION], hold=lambda wait: 5.0)
    with within(60):
        await poller(gateway, long_poll=25, seen_stage="mfa").poll_until_complete()
    assert [b["stage"] for b in gateway.bodies] == ["mfa", "mfa"]
    assert gateway.times == [0.0, 5.0]  # held 5 s at the same stage: asked again at once


@virtual_time
async def test_a_stage_answered_at_once_is_asked_again_at_once_only_when_it_changed() -> None:
    gateway = Gateway([pending("browser"), pending("browser"), pending("mfa"), SESSION])
    with within(60):
        await poller(gateway, long_poll=25, pace=1.0).poll_until_complete()
    # Not held and the stage unchanged: the hot-loop guard keeps the pace.
    assert gateway.times == [0.0, 0.0, 1.0, 1.0]


@virtual_time
async def test_a_poll_held_exactly_the_minimum_counts_as_held() -> None:
    gateway = Gateway([pending("browser"), SESSION], hold=lambda wait: 0.05)
    with within(60):
        await poller(gateway, long_poll=25, pace=1.0, seen_stage="browser").poll_until_complete()
    assert gateway.times == [0.0, 0.05]


@virtual_time
async def test_without_long_polling_the_pace_is_kept_even_when_the_stage_changes() -> None:
    gateway = Gateway([pending("browser"), pending("mfa"), SESSION])
    await poller(gateway, long_poll=0, pace=1.0).poll_until_complete()
    assert gateway.times == [0.0, 1.0, 2.0]
    assert all("wait" not in body for body in gateway.bodies)


@virtual_time
async def test_a_long_poll_shorter_than_a_second_is_still_asked_for_and_held() -> None:
    gateway = Gateway([pending("browser"), pending("browser"), SESSION], hold=lambda wait: wait)
    with within(60):
        await poller(gateway, long_poll=0.5, pace=1.0).poll_until_complete()
    assert [b["wait"] for b in gateway.bodies] == [0.5, 0.5, 0.5]
    assert gateway.times == [0.0, 0.5, 1.0]


@virtual_time
async def test_in_the_deadline_s_last_second_the_gateway_is_not_asked_to_hold() -> None:
    gateway = Gateway([pending("browser"), SESSION], hold=lambda wait: wait)
    with within(1.5):
        await poller(gateway, long_poll=25).poll_until_complete()
    assert gateway.bodies[0]["wait"] == 0.5
    assert "wait" not in gateway.bodies[1]  # 1 s left: nothing to hold for


@virtual_time
async def test_a_wake_before_the_first_poll_cuts_the_first_pace_short_when_there_is_no_first_wait() -> None:
    gateway = Gateway([PENDING, SESSION])
    wake = Wakeup()
    wake.set()
    await poller(gateway, pace=1.0, wake=wake).poll_until_complete()
    assert gateway.times == [0.0, 0.0]


@both_backends
async def test_retry_events_name_the_poller_s_rack() -> None:
    gateway = Gateway([UNAVAILABLE, SESSION])
    recorder = Recorder()
    await poller(gateway, recorder, policy=RetryPolicy.instant()).poll_until_complete()
    assert [e.rack for e in recorder.of(ev.GatewayRetry)] == ["dev"]


@virtual_time
async def test_a_wakeup_says_whether_it_was_woken_and_each_wake_is_consumed_once() -> None:
    wake = Wakeup()
    started = anyio.current_time()
    assert await wake.wait(1.0) is False
    assert anyio.current_time() - started == 1.0
    wake.set()
    assert await wake.wait(1.0) is True
    assert anyio.current_time() - started == 1.0  # at once
    assert await wake.wait(1.0) is False
