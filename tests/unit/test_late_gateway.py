"""A gateway that starts answering 30 s late (the VPN comes up while the login already runs).

Trio's ``MockClock`` with autojump stands in for the 30 s: every wait (the retry backoff, the
deadline) happens in virtual time, and the gateway (an ``httpx.MockTransport``) refuses every
connection until the virtual clock says it is up.  A rack whose gateway answered before (stored in
config.json with this URL) is retried until the login's deadline; a URL never seen before gives up
after ``start_attempts`` tries with the "check the URL" hint.  Commands retry until their
``--timeout`` the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest
from trio.testing import MockClock

from rgw.client import GatewayClient
from rgw.config import ConfigStore
from rgw.errors import GatewayUnreachable
from rgw.login import events as ev
from rgw.login.flow import LoginFlow, LoginOptions, answered_before
from rgw.retry import MIN_TRY, RetryPolicy
from tests.integration.flowkit import Recorder, device_on

URL = "https://gw.example.com"
UP_AFTER = 30.0
#: The real policy with its longest waits (no jitter): 10 tries take 26.2 s, the 11th comes at 31.2 s.
POLICY = RetryPolicy(rng=lambda low, high: high)
TRIES = LoginOptions().start_attempts

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


class LateGateway:
    """Refuses connections until ``UP_AFTER`` (virtual) seconds after it is made, then logs in."""

    def __init__(self, up_after: float = UP_AFTER) -> None:
        self.up_at = anyio.current_time() + up_after
        self.refused = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if anyio.current_time() < self.up_at:
            self.refused += 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.url.path == "/api/v1/auth/cli/start":
            return httpx.Response(
                200, json={"auth_url": f"{URL}/sign-in?state=s1", "state": "s1", "code_verifier": "v1"}
            )
        if request.url.path == "/api/v1/auth/cli/complete":
            return httpx.Response(200, json={"token": "rgw_sess_late", "email": "dev@example.com"})
        if request.url.path == "/api/v1/info":
            return httpx.Response(200, json={"user": {}})
        return httpx.Response(404)


class Quiet:
    async def open(self, url: str) -> bool:
        return True


def store_with(tmp_path: Path, racks: dict[str, str]) -> ConfigStore:
    directory = tmp_path / "config"
    directory.mkdir(mode=0o700)
    gateways = {name: {"url": url, "email": "dev@example.com"} for name, url in racks.items()}
    (directory / "config.json").write_text(json.dumps({"current": None, "gateways": gateways}))
    (directory / "config.json").chmod(0o600)
    return ConfigStore(directory)


async def login(store: ConfigStore, gateway: LateGateway, recorder: Recorder, timeout: float) -> str:
    # What the CLI does: the rack's stored entry, read before the login's deadline starts (the
    # autojump clock would otherwise jump to the deadline while a worker thread reads the file).
    known = answered_before((await store.read()).rack("dev"), URL)
    async with GatewayClient(URL, transport=httpx.MockTransport(gateway.handler)) as client:
        flow = LoginFlow(
            known_gateway=known,
            client=client,
            store=store,
            browser=Quiet(),
            device=device_on("laptop"),
            emit=recorder,
            policy=POLICY,
            options=LoginOptions(timeout=timeout, use_loopback=False, resume=False, long_poll=0),
        )
        session = await flow.run("dev")
    return session.email


async def test_a_stored_rack_is_retried_until_its_gateway_comes_up(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"dev": URL})
    gateway = LateGateway()
    recorder = Recorder()
    assert await login(store, gateway, recorder, timeout=120) == "dev@example.com"
    retries = recorder.of(ev.GatewayRetry)
    assert len(retries) == gateway.refused >= TRIES  # where the login used to give up
    assert all(isinstance(e, ev.GatewayRetry) and e.until_deadline for e in retries)
    assert recorder.kinds()[-1] == "LoggedIn"
    assert json.loads(store.path.read_text())["gateways"]["dev"]["token"] == "rgw_sess_late"


async def test_a_stored_rack_whose_gateway_stays_down_fails_with_the_real_cause_at_the_deadline(
    tmp_path: Path,
) -> None:
    store = store_with(tmp_path, {"dev": URL})
    recorder = Recorder()
    started = anyio.current_time()
    with pytest.raises(GatewayUnreachable) as info:
        await login(store, LateGateway(up_after=1000), recorder, timeout=60)
    assert info.value.cause == "refused"  # the real failure, not "timed out"
    # It kept trying until the next try could not have ended before the login's deadline.
    assert 60 - POLICY.cap - MIN_TRY <= anyio.current_time() - started <= 60
    assert len(recorder.of(ev.GatewayRetry)) > TRIES


class SlowToFail(LateGateway):
    """Refuses at once until ``slow_after``, then each try hangs (a DNS lookup the resolver takes
    5 s to fail, say) past the login's deadline."""

    def __init__(self, slow_after: float) -> None:
        super().__init__(up_after=1000)
        self.slow_at = anyio.current_time() + slow_after
        self.hung = 0

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        if anyio.current_time() >= self.slow_at:
            self.hung += 1
            await anyio.sleep(30)
        return self.handler(request)


async def test_a_deadline_that_cuts_a_try_short_says_why_the_gateway_did_not_answer_not_sign_in(
    tmp_path: Path,
) -> None:
    store = store_with(tmp_path, {"dev": URL})
    gateway = SlowToFail(slow_after=20)
    recorder = Recorder()
    with pytest.raises(GatewayUnreachable) as info:
        async with GatewayClient(URL, transport=httpx.MockTransport(gateway.async_handler)) as client:
            flow = LoginFlow(
                known_gateway=True,
                client=client,
                store=store,
                browser=Quiet(),
                device=device_on("laptop"),
                emit=recorder,
                policy=POLICY,
                options=LoginOptions(timeout=30, use_loopback=False, resume=False, long_poll=0),
            )
            await flow.run("dev")
    assert gateway.hung == 1  # the deadline came during that try
    assert info.value.cause == "refused"  # the failure before it, not "the sign-in was not finished"
    assert len(recorder.of(ev.GatewayRetry)) == gateway.refused


async def test_a_url_never_seen_before_gives_up_after_its_tries_with_the_check_the_url_hint(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"dev": "https://another.example.com"})  # same name, another gateway
    gateway = LateGateway()
    recorder = Recorder()
    with pytest.raises(GatewayUnreachable) as info:
        await login(store, gateway, recorder, timeout=120)
    assert info.value.cause == "refused"
    assert info.value.hint.startswith("Check the URL")
    assert gateway.refused == TRIES
    retries = recorder.of(ev.GatewayRetry)
    assert len(retries) == TRIES - 1
    assert not any(isinstance(e, ev.GatewayRetry) and e.until_deadline for e in retries)
    assert "token" not in json.loads(store.path.read_text())["gateways"]["dev"]


async def test_a_command_is_retried_until_its_timeout_when_the_gateway_comes_up_late() -> None:
    from rgw.deadline import within

    gateway = LateGateway()
    with within(120):
        async with GatewayClient(URL, transport=httpx.MockTransport(gateway.handler), policy=POLICY) as client:
            assert await client.info() == {"user": {}}
    assert gateway.refused >= TRIES


async def test_a_command_whose_gateway_stays_down_fails_with_the_real_cause_at_its_timeout() -> None:
    from rgw.deadline import within

    gateway = LateGateway()
    started = anyio.current_time()
    with pytest.raises(GatewayUnreachable) as info, within(20):
        async with GatewayClient(URL, transport=httpx.MockTransport(gateway.handler), policy=POLICY) as client:
            await client.info()
    assert info.value.cause == "refused"  # the real failure, not "timed out"
    assert 20 - POLICY.cap - MIN_TRY <= anyio.current_time() - started <= 20


async def test_a_command_client_starts_the_commands_deadline_when_none_is_in_force() -> None:
    gateway = LateGateway()
    transport = httpx.MockTransport(gateway.handler)
    async with GatewayClient(URL, transport=transport, policy=POLICY, timeout=120) as client:
        assert await client.info() == {"user": {}}  # 30 s late, within the command's --timeout
    started = anyio.current_time()
    with pytest.raises(GatewayUnreachable) as info:
        async with GatewayClient(URL, transport=transport, policy=POLICY, timeout=20) as client:
            gateway.up_at = anyio.current_time() + 1000
            await client.info()
    assert info.value.cause == "refused"
    assert 20 - POLICY.cap - MIN_TRY <= anyio.current_time() - started <= 20


async def test_the_flow_asks_the_config_whether_the_gateway_answered_before(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"dev": URL + "/", "other": "https://another.example.com"})
    async with GatewayClient(URL) as client:
        for rack, known in (("dev", True), ("other", False), ("new", False)):
            flow = LoginFlow(client=client, store=store, browser=Quiet(), device=device_on("x"), emit=Recorder())
            assert await flow.answered_before(rack) is known


def test_a_retry_until_the_deadline_says_that_ctrl_c_gives_up() -> None:
    import io

    from rgw.cli.render import TextRenderer

    out = io.StringIO()
    render = TextRenderer(out)
    render(ev.GatewayRetry("dev", 3, 0.8, "connection refused", until_deadline=True))
    render(ev.GatewayRetry("dev", 3, 0.8, "connection refused"))
    assert out.getvalue().splitlines() == [
        "Gateway unreachable (connection refused) - retrying (attempt 3, next in 0.8 s); Ctrl-C gives up",
        "Gateway unreachable (connection refused) - retrying (attempt 3, next in 0.8 s)",
    ]
