"""Resuming a login that Ctrl-C, a crash or a laptop lid interrupted (``rgw.login.pending``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import stat
import sys
import time
from pathlib import Path

import anyio
import httpx
import pexpect
import pyotp
import pytest

from rgw.cli.render import clock_time
from rgw.client import GatewayClient
from rgw.config import ConfigStore
from rgw.errors import RgwError
from rgw.login import events as ev
from rgw.login.flow import LoginFlow, LoginOptions
from rgw.login.pending import RESUME_MAX_AGE, PendingLogins
from rgw.models import Session
from rgw.retry import RetryPolicy
from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from tests.integration.flowkit import Recorder, device_on, state_of
from tests.integration.pipes import PipeReader
from tests.integration.procs import cli_env, spawn

DEVICE = device_on("resume-host")


class NoBrowser:
    """A browser launcher that only counts: it never signs in."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    async def open(self, url: str) -> bool:
        self.opened.append(url)
        return True


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make_flow(client: GatewayClient, config: Path, browser: object, recorder: Recorder, clock: Clock) -> LoginFlow:
    return LoginFlow(
        client=client,
        store=ConfigStore(config),
        browser=browser,  # type: ignore[arg-type]
        device=DEVICE,
        emit=recorder,
        policy=RetryPolicy(initial=0.05, cap=0.5),
        options=LoginOptions(timeout=30, pace=0.2, linger=0.5),
        wall_clock=clock,
    )


async def interrupted_login(url: str, config: Path, clock: Clock) -> str:
    """A login cancelled (Ctrl-C) once its browser was opened; returns its sign-in URL."""
    recorder = Recorder()
    browser = NoBrowser()
    async with GatewayClient(url) as client, anyio.create_task_group() as tg:
        flow = make_flow(client, config, browser, recorder, clock)
        tg.start_soon(flow.run, "dev")
        opening = await recorder.first(ev.BrowserOpening)
        await recorder.first(ev.Waiting)
        tg.cancel_scope.cancel()
    assert isinstance(opening, ev.BrowserOpening)
    return opening.auth_url


def pending_files(config: Path) -> list[Path]:
    return sorted(config.glob("pending-*.json"))


async def login_again(
    url: str, config: Path, clock: Clock, browser: object, *, user: object = None
) -> tuple[Session, Recorder]:
    recorder = Recorder()
    async with GatewayClient(url) as client, anyio.create_task_group() as tg:
        if user is not None:
            tg.start_soon(user, recorder)  # type: ignore[arg-type]
        session = await make_flow(client, config, browser, recorder, clock).run("dev")
        tg.cancel_scope.cancel()
    return session, recorder


@pytest.mark.anyio
async def test_a_sign_in_finished_after_ctrl_c_is_redeemed_without_a_browser(
    deployed_gateway: RunningGateway, tmp_path: Path
) -> None:
    config, clock = tmp_path / "config", Clock()
    auth_url = await interrupted_login(deployed_gateway.url, config, clock)
    [record] = pending_files(config)
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    saved = json.loads(record.read_text())
    assert (saved["rack"], saved["url"], saved["state"]) == ("dev", deployed_gateway.url, state_of(auth_url))
    assert not (config / "config.json").exists()

    await ScriptedBrowser().open(auth_url)  # the user finishes the sign-in while no CLI runs
    browser = NoBrowser()
    session, recorder = await login_again(deployed_gateway.url, config, clock, browser)

    assert session.email == "developer@example.com"
    assert browser.opened == []
    assert recorder.kinds() == ["LoginResumed", "LoggedIn"]
    resumed = recorder.events[0]
    assert resumed == ev.LoginResumed("dev", saved["started_at"], True, auth_url)
    assert pending_files(config) == []
    assert json.loads((config / "config.json").read_text())["gateways"]["dev"]["token"] == session.token


@pytest.mark.anyio
async def test_a_pending_login_is_waited_on_without_opening_the_browser_again(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    config, clock = tmp_path / "config", Clock()
    auth_url = await interrupted_login(gateway.url, config, clock)
    [record] = pending_files(config)
    old_listener = json.loads(record.read_text())["listener"]
    assert old_listener.startswith("http://127.0.0.1:")
    browser = NoBrowser()
    tab = ScriptedBrowser()

    async def user(recorder: Recorder) -> None:
        await recorder.first(ev.LoginResumed)
        await tab.open(auth_url)  # the tab the interrupted login opened, finished now

    session, recorder = await login_again(gateway.url, config, clock, browser, user=user)
    assert session.email == "developer@example.com"
    assert browser.opened == []
    # The gateway sent the tab back to the interrupted login's listener: this login listens there
    # again (same port, same path), so the tab ends on the login's own page, not "connection refused".
    assert tab.visited[-1].startswith(old_listener + "?state=")
    assert "Logged in to rack dev" in tab.last_page
    resumed = recorder.of(ev.LoginResumed)
    assert [(e.finished, e.auth_url) for e in resumed] == [(False, auth_url)]  # type: ignore[attr-defined]
    assert "BrowserOpening" not in recorder.kinds()
    assert recorder.kinds()[-1] == "LoggedIn"
    assert pending_files(config) == []


@pytest.mark.anyio
async def test_when_the_old_port_is_taken_the_resumed_login_finishes_by_polling(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    config, clock = tmp_path / "config", Clock()
    auth_url = await interrupted_login(gateway.url, config, clock)
    [record] = pending_files(config)
    port = int(json.loads(record.read_text())["listener"].split(":")[2].split("/")[0])
    with socket.socket() as squatter:  # another program took the port meanwhile
        squatter.bind(("127.0.0.1", port))
        squatter.listen()

        async def user(recorder: Recorder) -> None:
            await recorder.first(ev.LoginResumed)
            # The gateway sends the tab to the squatter: the browser sees no page of ours.
            with contextlib.suppress(httpx.HTTPError):
                await ScriptedBrowser(timeout=1.0).open(auth_url)

        session, recorder = await login_again(gateway.url, config, clock, NoBrowser(), user=user)
    assert session.email == "developer@example.com"
    assert "CallbackReceived" not in recorder.kinds()  # the poller alone finished it


@pytest.mark.anyio
async def test_a_pending_record_with_a_foreign_listener_is_not_listened_for(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    config, clock = tmp_path / "config", Clock()
    await interrupted_login(gateway.url, config, clock)
    [record] = pending_files(config)
    saved = json.loads(record.read_text())
    for planted in ("http://0.0.0.0:8080/" + "a" * 22, "http://evil.example:80/" + "a" * 22, "file:///etc/passwd", 7):
        saved["listener"] = planted
        record.write_text(json.dumps(saved))
        found = await PendingLogins(config, "dev", gateway.url, clock=clock).load()
        assert found is not None
        assert found.listener is None  # the login is still resumed; only the listener is not taken up


@pytest.mark.anyio
async def test_a_state_the_gateway_no_longer_knows_starts_afresh(gateway: RunningGateway, tmp_path: Path) -> None:
    config, clock = tmp_path / "config", Clock()
    await interrupted_login(gateway.url, config, clock)
    [record] = pending_files(config)
    saved = json.loads(record.read_text())
    saved["state"] = "A" * 43  # a state this gateway never issued
    record.write_text(json.dumps(saved))

    session, recorder = await login_again(gateway.url, config, clock, ScriptedBrowser())
    assert session.email == "developer@example.com"
    assert recorder.kinds()[:3] == ["ResumeDiscarded", "GatewayReachable", "BrowserOpening"]
    assert recorder.events[0] == ev.ResumeDiscarded("dev", saved["started_at"])
    assert recorder.kinds()[-1] == "LoggedIn"
    assert pending_files(config) == []


@pytest.mark.anyio
async def test_a_stale_pending_login_is_ignored(deployed_gateway: RunningGateway, tmp_path: Path) -> None:
    config, clock = tmp_path / "config", Clock()
    auth_url = await interrupted_login(deployed_gateway.url, config, clock)
    await ScriptedBrowser().open(auth_url)  # finished in the browser, but too long ago
    clock.now += RESUME_MAX_AGE + 1
    before = deployed_gateway.gateway.login.state(state_of(auth_url))
    assert before is not None

    session, recorder = await login_again(deployed_gateway.url, config, clock, ScriptedBrowser())
    assert "LoginResumed" not in recorder.kinds()
    assert recorder.kinds()[:2] == ["GatewayReachable", "BrowserOpening"]
    opening = recorder.of(ev.BrowserOpening)[0]
    assert state_of(opening.auth_url) != state_of(auth_url)  # type: ignore[attr-defined]
    # The old state was never redeemed: the gateway still holds it, verified and unused.
    assert deployed_gateway.gateway.login.state(state_of(auth_url)) is not None
    assert session.email == "developer@example.com"
    assert pending_files(config) == []


@pytest.mark.anyio
async def test_a_pending_login_is_never_used_for_another_url(
    gateway: RunningGateway, deployed_gateway: RunningGateway, tmp_path: Path
) -> None:
    config, clock = tmp_path / "config", Clock()
    auth_url = await interrupted_login(deployed_gateway.url, config, clock)
    await ScriptedBrowser().open(auth_url)
    [record] = pending_files(config)
    # Even a record planted under the other URL's name is refused: it names its own URL.
    other = PendingLogins(config, "dev", gateway.url)
    os.rename(record, other.path)

    session, recorder = await login_again(gateway.url, config, clock, ScriptedBrowser())
    assert "LoginResumed" not in recorder.kinds()
    assert recorder.kinds()[:2] == ["GatewayReachable", "BrowserOpening"]
    assert session.email == "developer@example.com"
    assert pending_files(config) == []


@pytest.mark.anyio
async def test_a_symlinked_pending_file_is_not_followed(gateway: RunningGateway, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("keep me")
    os.symlink(target, PendingLogins(config, "dev", gateway.url).path)
    try:
        session, recorder = await login_again(gateway.url, config, Clock(), ScriptedBrowser())
    except RgwError as exc:  # pragma: no cover - the login must not fail over a planted link
        raise AssertionError(exc.message) from exc
    assert session.email == "developer@example.com"
    assert target.read_text() == "keep me"
    assert "LoginResumed" not in recorder.kinds()


def test_ctrl_c_then_the_same_login_command_completes_without_a_browser(
    deployed_gateway: RunningGateway, tmp_path: Path
) -> None:
    config = tmp_path / "cfg"
    env = cli_env()
    env["BROWSER"] = f"{sys.executable} -c pass %s"  # "opens" and signs nobody in
    first = spawn(config, "login", "dev", deployed_gateway.url, env=env)
    err = PipeReader(first.stderr, "the first login")
    line = err.wait_for(lambda text: text.startswith("If it does not open, visit: "), 30, "the sign-in URL")
    err.wait_for(lambda text: text.startswith("Waiting for the browser"), 30, "waiting for the sign-in")
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=30) == 130
    auth_url = line.strip().removeprefix("If it does not open, visit: ")
    started = json.loads(next(config.glob("pending-*.json")).read_text())["started_at"]

    anyio.run(ScriptedBrowser().open, auth_url)  # the sign-in finished while no CLI ran

    env["BROWSER"] = f"{sys.executable} -c 'raise SystemExit(3)' %s"
    second = spawn(config, "login", "dev", deployed_gateway.url, env=env)
    out, errors = second.communicate(timeout=60)
    assert second.returncode == 0, errors
    assert errors.splitlines() == [f"Resumed the login started at {clock_time(started)}"]
    assert out.splitlines() == ["Logged in as developer@example.com"]
    assert list(config.glob("pending-*.json")) == []
    assert json.loads((config / "config.json").read_text())["gateways"]["dev"]["email"] == "developer@example.com"


@pytest.mark.anyio
async def test_a_planted_sign_in_url_is_never_shown(deployed_gateway: RunningGateway, tmp_path: Path) -> None:
    config, clock = tmp_path / "config", Clock()
    await interrupted_login(deployed_gateway.url, config, clock)
    [record] = pending_files(config)
    saved = json.loads(record.read_text())
    saved["auth_url"] = "javascript:alert(1)"
    record.write_text(json.dumps(saved))

    session, recorder = await login_again(deployed_gateway.url, config, clock, ScriptedBrowser())
    assert "LoginResumed" not in recorder.kinds()
    assert all("javascript" not in repr(event) for event in recorder.events)
    assert recorder.kinds()[:2] == ["GatewayReachable", "BrowserOpening"]
    assert session.email == "developer@example.com"


def pty_login(config: Path, url: str, browser: str, *args: str) -> tuple[pexpect.spawn, io.StringIO]:
    """``rack-gateway [ARGS] login dev URL`` in a pseudo-terminal (80 columns), and what it shows."""
    env = cli_env()
    env["BROWSER"] = browser
    env["TERM"] = "dumb"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "rgw", "--config", str(config), *args, "login", "dev", url, "--timeout", "60"],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(24, 80),
    )
    transcript = io.StringIO()
    child.logfile_read = transcript
    return child, transcript


def test_a_login_resumed_at_its_mfa_stage_says_so_and_prompts_before_polling_again(tmp_path: Path) -> None:
    """The browser part was done (the tab stopped on the gateway's MFA page) when Ctrl-C came: the
    next login says where it stands and prompts on the one unheld poll that resumed it (-v shows
    each /complete), not after another poll (once a 25 s long poll)."""
    config, user = tmp_path / "cfg", "mfa@example.com"
    with running_gateway(GatewaySettings()) as gw:
        secret = gw.gateway.totp_secret(user)
        assert secret is not None
        stop_at_mfa = f"{sys.executable} -m rgw.testing.scripted_browser --email {user} --stop-at-mfa %s"
        first, _ = pty_login(config, gw.url, stop_at_mfa)
        try:
            first.expect_exact("Enter TOTP code:")
            first.sendintr()
            first.expect(pexpect.EOF)
        finally:
            first.close(force=True)
        assert first.exitstatus == 130
        started = json.loads(next(config.glob("pending-*.json")).read_text())["started_at"]

        second, transcript = pty_login(config, gw.url, f"{sys.executable} -c 'raise SystemExit(3)' %s", "-v")
        try:
            second.expect_exact("Enter TOTP code: ")
            shown = transcript.getvalue().replace("\r", "").splitlines()
            code = pyotp.TOTP(secret).now()
            second.sendline(code)
            second.expect_exact(f"Logged in as {user}")
            second.expect(pexpect.EOF)
        finally:
            second.close(force=True)
    assert second.exitstatus == 0, transcript.getvalue()
    assert [line for line in shown if not line.startswith("[rgw +")] == [
        f"Resuming the login started at {clock_time(started)}: browser sign-in done, MFA still needed.",
        "MFA verification required.",
        "Enter TOTP code: ",
    ]
    polls = [line for line in shown if "/api/v1/auth/cli/complete -> " in line]
    assert len(polls) == 1  # the resuming poll: the prompt came before any other
    assert code not in transcript.getvalue()
