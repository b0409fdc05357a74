"""``rgw.deadline``: a command's one deadline, what reads it, and the step-up MFA pause.

Trio's autojump ``MockClock`` stands in for the seconds: a person "typing" for 100 s, a gateway
holding a request open, all in virtual time.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import httpx
import pytest
from trio.testing import MockClock

from rgw.client import GatewayClient
from rgw.deadline import in_force, paused, time_left, until, within
from rgw.errors import GatewayUnreachable
from rgw.login.mfa import MfaSettings, StepUpMfa
from rgw.retry import RetryPolicy

pytestmark = pytest.mark.anyio

URL = "https://gw.example.com"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


async def test_the_deadline_is_the_enclosing_scope_and_only_a_commands_counts() -> None:
    assert time_left() == math.inf
    assert not in_force()
    with anyio.fail_after(100):  # somebody's scope (a test's), not a command's deadline
        assert time_left() == 100
        assert not in_force()
        with within(10) as scope:
            assert in_force()
            assert time_left() == 10
            await anyio.sleep(4)
            assert time_left() == 6
        assert not scope.cancelled_caught
        assert not in_force()
    with until(anyio.current_time() + 3) as scope:
        await anyio.sleep(60)
    assert scope.cancelled_caught


async def test_a_person_answering_stops_the_commands_clock() -> None:
    with within(10) as scope:
        await anyio.sleep(4)
        with paused():
            assert time_left() == math.inf  # not cut off while typing
            await anyio.sleep(100)
        assert time_left() == 6  # the 100 s did not count
        await anyio.sleep(60)
    assert scope.cancelled_caught
    with paused():  # without a command's deadline: nothing to stop
        await anyio.sleep(1)


class SlowTypist:
    """Types the code after ``seconds`` (virtual) seconds."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        await anyio.sleep(self.seconds)
        return "123456"

    def notify(self, text: str) -> None:
        return None


def step_up_gateway(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/api/v1/auth/mfa/status":
        return httpx.Response(200, json={"enrolled": True, "methods": [{"type": "totp"}]})
    if request.headers.get("x-mfa-totp") == "123456":
        return httpx.Response(200, json=[{"name": "app"}])
    return httpx.Response(401, headers={"X-MFA-Required": "step-up"}, json={"error": "mfa_required"})


async def test_the_time_a_person_takes_to_answer_step_up_mfa_does_not_count_against_the_timeout() -> None:
    def step_up(client: GatewayClient) -> Any:
        return StepUpMfa(client, prompter=SlowTypist(100), settings=MfaSettings())

    started = anyio.current_time()
    async with GatewayClient(
        URL,
        token="rgw_sess_x",
        transport=httpx.MockTransport(step_up_gateway),
        policy=RetryPolicy(),
        timeout=5,
        step_up=step_up,
    ) as client:
        assert await client.apps() == [{"name": "app"}]
    assert anyio.current_time() - started >= 100


async def test_a_request_the_gateway_holds_past_the_timeout_ends_as_timed_out_naming_the_gateway() -> None:
    async def hold(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(1000)
        return httpx.Response(200, json={})

    started = anyio.current_time()
    with pytest.raises(GatewayUnreachable) as info:
        async with GatewayClient(URL, transport=httpx.MockTransport(hold), policy=RetryPolicy(), timeout=5) as client:
            await client.info()
    assert str(info.value) == "gateway gw.example.com unreachable: timed out"
    assert info.value.exit_code == 5
    assert anyio.current_time() - started == 5
