"""The login orchestrator over real sockets: who wins the race, and what the user is told."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from rgw.client import GatewayClient
from rgw.config import ConfigStore
from rgw.errors import GatewayUnreachable, LoginError, LoginTimeout, RgwError
from rgw.login import events as ev
from rgw.login.flow import LoginFlow, LoginOptions
from rgw.models import Session
from rgw.retry import RetryPolicy
from rgw.testing import RunningGateway, ScriptedBrowser
from tests.integration.flowkit import Recorder, device_on, state_of
from tests.ports import refused_port

pytestmark = pytest.mark.anyio

DEVICE = device_on("test-host")


class FailingBrowser:
    def __init__(self, error: bool = False) -> None:
        self.error = error

    async def open(self, url: str) -> bool:
        if self.error:
            raise RuntimeError("xdg-open exploded")
        return False


class ListPaste:
    """A user pasting lines; ``feed`` hands it the next one."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[str](10)

    async def read_line(self) -> str | None:
        try:
            return await self.receive.receive()
        except anyio.EndOfStream:
            return None


async def run_flow(
    gateway: RunningGateway,
    tmp_path: Path,
    *,
    browser: object,
    options: LoginOptions,
    recorder: Recorder,
    paste: ListPaste | None = None,
    user: Callable[[Recorder], object] | None = None,
    url: str | None = None,
) -> tuple[Session, LoginFlow]:
    store = ConfigStore(tmp_path / "config")
    async with GatewayClient(url or gateway.url) as client:
        flow = LoginFlow(
            client=client,
            store=store,
            browser=browser,  # type: ignore[arg-type]
            device=DEVICE,
            emit=recorder,
            policy=RetryPolicy(initial=0.05, cap=0.5),
            options=options,
            paste=paste,
        )
        error: RgwError | None = None
        async with anyio.create_task_group() as tg:
            if user is not None:
                tg.start_soon(user, recorder)  # type: ignore[arg-type]
            try:
                session = await flow.run("dev")
            except RgwError as exc:
                error = exc
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return session, flow


async def test_loopback_wakes_the_poller(gateway: RunningGateway, tmp_path: Path) -> None:
    recorder = Recorder()
    # No long poll and a 60 s pace: only the loopback hit can finish this login in time.
    options = LoginOptions(timeout=30, long_poll=0, pace=60)
    session, flow = await run_flow(gateway, tmp_path, browser=ScriptedBrowser(), options=options, recorder=recorder)
    assert session.email == "developer@example.com"
    kinds = recorder.kinds()
    assert kinds[:2] == ["GatewayReachable", "BrowserOpening"]
    # The scripted user finishes inside open(), so BrowserOpened may come after the callback.
    assert sorted(kinds) == sorted(
        [*kinds[:2], "Waiting", "BrowserOpened", "CallbackReceived", "OAuthSucceeded", "LoggedIn"]
    )
    assert kinds.index("Waiting") < kinds.index("CallbackReceived") < kinds.index("OAuthSucceeded")
    assert kinds[-1] == "LoggedIn"
    assert isinstance(recorder.events[0], ev.GatewayReachable)
    assert recorder.events[0].loopback is True
    callback = next(e for e in recorder.events if isinstance(e, ev.CallbackReceived))
    assert callback.ok
    assert callback.via == "loopback"
    assert flow.poller is not None
    assert flow.poller.requests == 2  # one pending answer, then the redeem right after the wake
    stored = (await ConfigStore(tmp_path / "config").read()).rack("dev")
    assert stored is not None
    assert stored.token == session.token


async def test_long_poll_wins_without_a_listener(gateway: RunningGateway, tmp_path: Path) -> None:
    recorder = Recorder()
    options = LoginOptions(timeout=30, use_loopback=False, pace=60)
    session, flow = await run_flow(
        gateway, tmp_path, browser=ScriptedBrowser(delay=0.3), options=options, recorder=recorder
    )
    assert session.email == "developer@example.com"
    assert "CallbackReceived" not in recorder.kinds()
    kinds = recorder.kinds()
    assert kinds[-1] == "LoggedIn"
    assert kinds.index("Waiting") < kinds.index("OAuthSucceeded")
    assert recorder.events[0].loopback is False  # type: ignore[attr-defined]
    assert flow.poller is not None
    assert flow.poller.requests <= 3


async def test_paste_wins(gateway: RunningGateway, tmp_path: Path) -> None:
    recorder = Recorder()
    paste = ListPaste()

    async def user(rec: Recorder) -> None:
        opening = await rec.first(ev.BrowserUnavailable)
        assert isinstance(opening, ev.BrowserUnavailable)
        state = state_of(opening.auth_url)
        await paste.send.send("not a url at all")
        await paste.send.send(f"http://127.0.0.1:1/cb?state={'x' * 43}&result=ok")  # another login's URL
        gateway.gateway.complete_browser_login(state, "developer@example.com")
        await paste.send.send(f"http://127.0.0.1:1/cb?state={state}&result=ok")

    options = LoginOptions(timeout=30, use_loopback=False, long_poll=0, pace=60, open_browser=False)
    session, _ = await run_flow(
        gateway, tmp_path, browser=FailingBrowser(), options=options, recorder=recorder, paste=paste, user=user
    )
    paste.send.close()
    paste.receive.close()
    assert session.email == "developer@example.com"
    received = [e for e in recorder.events if isinstance(e, ev.CallbackReceived)]
    assert [(e.ok, e.via) for e in received] == [(True, "paste")]


@pytest.mark.parametrize("raises", [False, True])
async def test_browser_fails_but_login_succeeds(gateway: RunningGateway, tmp_path: Path, raises: bool) -> None:
    recorder = Recorder()

    async def user(rec: Recorder) -> None:
        event = await rec.first(ev.BrowserUnavailable)
        assert isinstance(event, ev.BrowserUnavailable)
        gateway.gateway.complete_browser_login(state_of(event.auth_url), "developer@example.com")

    options = LoginOptions(timeout=30)
    session, _ = await run_flow(
        gateway, tmp_path, browser=FailingBrowser(error=raises), options=options, recorder=recorder, user=user
    )
    assert session.email == "developer@example.com"
    kinds = recorder.kinds()
    assert kinds.index("BrowserOpening") < kinds.index("BrowserUnavailable") < kinds.index("LoggedIn")


async def test_gateway_error_ends_the_login_at_once(gateway: RunningGateway, tmp_path: Path) -> None:
    recorder = Recorder()
    browser = ScriptedBrowser(email="mallory@evil.com")
    # A 600 s deadline the test could never wait for: only the gateway's answer ends this login.
    with pytest.raises(LoginError, match=r"^email domain not allowed$") as info:
        await run_flow(gateway, tmp_path, browser=browser, options=LoginOptions(timeout=600), recorder=recorder)
    assert type(info.value) is LoginError  # not a LoginTimeout
    assert info.value.exit_code == 7
    assert info.value.hint is not None
    assert "Signed in as mallory@evil.com" in info.value.hint
    assert "GOOGLE_ALLOWED_DOMAIN" in info.value.hint
    assert "LoggedIn" not in recorder.kinds()
    assert "GatewayRetry" not in recorder.kinds()
    # The browser was sent to the CLI's listener with the gateway's error, and the listener showed it.
    assert browser.last_status == 200
    assert "<h1>Login to rack dev failed</h1>" in browser.last_page
    assert '<p class="error">email domain not allowed: mallory@evil.com</p>' in browser.last_page
    # The gateway failed the login and the CLI collected that failure: the state is gone.
    opening = await recorder.first(ev.BrowserOpening)
    assert isinstance(opening, ev.BrowserOpening)
    assert gateway.gateway.login.state(state_of(opening.auth_url)) is None
    assert not (tmp_path / "config" / "config.json").exists() or "dev" not in (
        (tmp_path / "config" / "config.json").read_text()
    )


class SilentBrowser:
    """Says it opened the URL and never visits it: no redirect will reach the listener."""

    async def open(self, url: str) -> bool:
        return True


async def test_a_failure_is_not_reported_as_a_timeout_when_the_deadline_cuts_the_linger(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    recorder = Recorder()

    async def user(rec: Recorder) -> None:
        opening = await rec.first(ev.BrowserOpening)
        assert isinstance(opening, ev.BrowserOpening)
        await rec.first(ev.Waiting)
        gateway.gateway.fail_browser_login(state_of(opening.auth_url), "consent cancelled")

    # The listener would wait 600 s for the browser's redirect: the 3 s deadline ends the wait.
    options = LoginOptions(timeout=3, linger=600)
    with pytest.raises(LoginError) as info:
        await run_flow(gateway, tmp_path, browser=SilentBrowser(), options=options, recorder=recorder, user=user)
    assert type(info.value) is LoginError
    assert str(info.value) == "consent cancelled"
    assert info.value.exit_code == 7


async def test_deadline_says_what_probably_happened(deployed_gateway: RunningGateway, tmp_path: Path) -> None:
    recorder = Recorder()
    browser = ScriptedBrowser(email="mallory@evil.com")
    # A deployed gateway keeps a domain-rejected login pending: only the deadline ends it.
    with pytest.raises(LoginTimeout) as info:
        await run_flow(
            deployed_gateway,
            tmp_path,
            browser=browser,
            options=LoginOptions(timeout=2, pace=0.2),
            recorder=recorder,
        )
    # The user really signed in and the gateway showed them its domain error page ...
    assert browser.last_status == 403
    assert "email domain not allowed: mallory@evil.com" in browser.last_page
    # ... but told the CLI nothing: the login is still pending there, signed in as mallory ...
    opening = await recorder.first(ev.BrowserOpening)
    assert isinstance(opening, ev.BrowserOpening)
    state = deployed_gateway.gateway.login.state(state_of(opening.auth_url))
    assert state is not None
    assert (state.stage, state.email, state.error) == ("browser", "mallory@evil.com", None)
    assert deployed_gateway.gateway.login.pending_body(state) == {"status": "pending"}
    # ... so the CLI polled until its deadline and timed out, naming the likely causes.
    assert str(info.value) == "login to dev timed out after 2 s without a completed sign-in"
    assert info.value.exit_code == 8
    assert info.value.hint == LoginTimeout.default_hint
    assert "email domain is not allowed" in info.value.hint
    # Every poll was answered (pending) and none failed; nothing but the wait happened.
    assert sorted(recorder.kinds()) == ["BrowserOpened", "BrowserOpening", "GatewayReachable", "Waiting"]
    assert not (tmp_path / "config" / "config.json").exists()


async def test_cancellation_leaves_config_untouched_and_closes_the_listener(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    from rgw.login.listener import CallbackListener

    recorder = Recorder()
    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    (config / "config.json").write_text('{"current": "x", "gateways": {"x": {"url": "https://x"}}}')
    before = (config / "config.json").read_bytes()
    ports: list[int] = []

    async def cancel_when_waiting(rec: Recorder, scope: anyio.CancelScope) -> None:
        await rec.first(ev.Waiting)
        # The listener the attempt started is up while the login waits ...
        assert flow.attempt is not None
        listener = flow.attempt.listener
        assert isinstance(listener, CallbackListener)
        port = listener.port
        assert port
        ports.append(port)
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.aclose()
        scope.cancel()

    async with GatewayClient(gateway.url) as client:
        flow = LoginFlow(
            client=client,
            store=ConfigStore(config),
            browser=FailingBrowser(),
            device=DEVICE,
            emit=recorder,
            options=LoginOptions(timeout=30),
        )
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_when_waiting, recorder, scope)
                await flow.run("dev")
    assert scope.cancelled_caught
    assert (config / "config.json").read_bytes() == before
    # ... and closed once the login is cancelled.
    with pytest.raises(OSError):  # noqa: PT011 - refused, reported differently by each backend
        await anyio.connect_tcp("127.0.0.1", ports[0])


async def test_unreachable_gateway_is_reported_before_any_browser(tmp_path: Path) -> None:
    port = refused_port()
    recorder = Recorder()
    store = ConfigStore(tmp_path / "config")
    async with GatewayClient(f"http://127.0.0.1:{port}") as client:
        flow = LoginFlow(
            client=client,
            store=store,
            browser=ScriptedBrowser(),
            device=DEVICE,
            emit=recorder,
            policy=RetryPolicy.instant(),
            options=LoginOptions(timeout=30, start_attempts=4),
        )
        with pytest.raises(GatewayUnreachable) as info:
            await flow.run("dev")
    assert info.value.cause == "refused"
    assert recorder.kinds() == ["GatewayRetry"] * 3
    assert [e.attempt for e in recorder.events if isinstance(e, ev.GatewayRetry)] == [1, 2, 3]
