"""MFA at login against a gateway without the ``stage`` extension (the deployed one, issue 21).

The reference gateway in deployed mode; a scripted browser that signs in and stops on the gateway's
MFA page; the CLI in-process reading a real pipe as its terminal (the one terminal reader).  A code
typed in the terminal goes to ``POST /auth/cli/mfa``; ``--mfa-code`` goes there after each poll.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pyotp
import pytest

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.client import GatewayClient
from rgw.config import ConfigStore
from rgw.login import events as ev
from rgw.login.flow import LoginFlow, LoginOptions
from rgw.login.mfa import LoginMfa, MfaSettings
from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from tests.integration.flowkit import Recorder, device_on

pytestmark = pytest.mark.anyio

MFA_USER = "mfa@example.com"


class Watched(io.StringIO):
    """stderr that a test can wait on: ``await seen(text)``."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = anyio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.changed.set()
        self.changed = anyio.Event()
        return written

    async def seen(self, text: str, count: int = 1) -> None:
        with anyio.move_on_after(15):
            while self.getvalue().count(text) < count:
                await self.changed.wait()
            return
        raise AssertionError(f"{text!r} not shown within 15 s; the terminal showed:\n{self.getvalue()}")


class GatedBrowser(ScriptedBrowser):
    """Signs in once ``go`` is set (at once without it) and stops on the MFA page (no TOTP secret),
    unless given one; ``at_mfa`` is set once it rests there."""

    def __init__(self, *, go: anyio.Event | None = None, **kwargs: Any) -> None:
        super().__init__(email=MFA_USER, **kwargs)
        self.go = go
        self.at_mfa = anyio.Event()

    async def open(self, url: str) -> bool:
        if self.go is not None:
            await self.go.wait()
        opened = await super().open(url)
        self.at_mfa.set()
        return opened


def totp(gw: RunningGateway, later: int = 0) -> str:
    """The code of the current 30 s step, or of one ``later`` steps on (the gateway takes +-1)."""
    secret = gw.gateway.totp_secret(MFA_USER)
    assert secret is not None
    return pyotp.TOTP(secret).at(int(time.time()) + 30 * later)


def wrong_code(gw: RunningGateway) -> str:
    secret = gw.gateway.totp_secret(MFA_USER)
    assert secret is not None
    now = int(time.time())
    valid = {pyotp.TOTP(secret).at(now + 30 * k) for k in (-2, -1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222") if c not in valid)


class Terminal:
    """The CLI in-process with a pipe as its terminal; ``type`` writes a line into it."""

    def __init__(self, tmp_path: Path, browser: ScriptedBrowser, *options: str, interactive: bool = True) -> None:
        self.config = tmp_path / "cfg"
        self.read_end, self.write_end = os.pipe()
        self.stdin = open(self.read_end, closefd=False)  # noqa: SIM115 - closed by close()
        self.err = Watched()
        self.out = io.StringIO()
        self.options = options
        self.app = App(
            options=Options(config_dir=self.config),
            environ={},
            stdin=self.stdin,
            out=self.out,
            err=self.err,
            browser=browser,
            interactive=interactive,
        )
        self.exit_code: int | None = None

    def type(self, line: str) -> None:
        os.write(self.write_end, line.encode() + b"\n")

    async def login(self, gw: RunningGateway) -> None:
        args = [*self.options, "login", "dev", gw.url, "--timeout", "60"]
        self.exit_code = await run(args, obj=self.app)

    def close(self) -> None:
        self.stdin.close()
        os.close(self.read_end)
        os.close(self.write_end)

    def entry(self) -> dict[str, Any]:
        return dict(json.loads((self.config / "config.json").read_text())["gateways"]["dev"])


@asynccontextmanager
async def running_login(term: Terminal, gw: RunningGateway) -> AsyncIterator[anyio.Event]:
    """The login runs while the body plays the user; ``done`` is set when it has ended."""
    done = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:

            async def login() -> None:
                try:
                    await term.login(gw)
                finally:
                    done.set()

            tg.start_soon(login)
            yield done
            with anyio.fail_after(30):
                await done.wait()
    finally:
        term.close()


async def test_a_code_typed_in_the_terminal_verifies_mfa(tmp_path: Path, deployed_gateway: RunningGateway) -> None:
    gw = deployed_gateway
    browser = GatedBrowser()
    term = Terminal(tmp_path, browser, "--mfa-method", "totp")
    async with running_login(term, gw):
        await term.err.seen("Enter TOTP code")  # rgw knows the account has MFA: the prompt says so
        await browser.at_mfa.wait()
        term.type(totp(gw))
    err = term.err.getvalue()
    assert term.exit_code == 0, err
    assert "MFA verification required." in err
    assert "MFA verified" in err
    assert term.out.getvalue() == f"Logged in as {MFA_USER}\n"
    entry = term.entry()
    assert entry["mfa_verified"] is True
    assert gw.gateway.session_valid(entry["token"])


async def test_a_wrong_code_then_the_right_one(tmp_path: Path, deployed_gateway: RunningGateway) -> None:
    gw = deployed_gateway
    browser = GatedBrowser()
    term = Terminal(tmp_path, browser)
    async with running_login(term, gw):
        await browser.at_mfa.wait()
        term.type(wrong_code(gw))
        await term.err.seen("Wrong code")
        term.type(totp(gw))
    err = term.err.getvalue()
    assert term.exit_code == 0, err
    # Not known to have MFA: the waiting line stays as short as it was, and claims nothing.
    assert "Waiting for the browser sign-in to finish (and for MFA there, if your account requires it)..." in err
    assert "MFA verification required." not in err
    assert "Wrong code (2 tries left)" in err
    assert err.index("Wrong code") < err.index("MFA verified")
    assert term.entry()["mfa_verified"] is True
    ledger = json.loads((term.config / "mfa-attempts.json").read_text())
    outcomes = sorted(entry[1] for entries in ledger.values() for entry in entries)
    assert outcomes == [0, 1]  # each answer recorded, as the extension path does


async def test_a_code_typed_before_the_sign_in_ends(tmp_path: Path, deployed_gateway: RunningGateway) -> None:
    gw = deployed_gateway
    go = anyio.Event()
    browser = GatedBrowser(go=go)
    term = Terminal(tmp_path, browser)
    async with running_login(term, gw):
        await term.err.seen("Waiting for the browser sign-in")
        term.type(totp(gw))  # the browser has not even opened the sign-in page
        await term.err.seen("finish signing in")
        go.set()
        await browser.at_mfa.wait()
        term.type(totp(gw))
    err = term.err.getvalue()
    assert term.exit_code == 0, err
    assert "MFA verified" in err
    # Never resent on its own: one "finish signing in" and one verification.
    assert err.count("finish signing in") == 1
    assert term.entry()["mfa_verified"] is True


async def test_mfa_code_without_a_terminal(tmp_path: Path, deployed_gateway: RunningGateway) -> None:
    gw = deployed_gateway
    browser = GatedBrowser()
    term = Terminal(tmp_path, browser, "--mfa-code", totp(gw), interactive=False)
    async with running_login(term, gw):
        pass
    err = term.err.getvalue()
    assert term.exit_code == 0, err
    assert "MFA verification required." in err  # --mfa-code says the account has MFA
    assert "MFA verified" in err
    assert term.entry()["mfa_verified"] is True


async def test_the_browser_finishing_mfa_first(tmp_path: Path, deployed_gateway: RunningGateway) -> None:
    gw = deployed_gateway
    secret = gw.gateway.totp_secret(MFA_USER)
    browser = GatedBrowser(totp_secret=secret)
    term = Terminal(tmp_path, browser, "--mfa-method", "totp")
    async with running_login(term, gw):
        pass  # nothing typed
    err = term.err.getvalue()
    assert term.exit_code == 0, err
    assert "Enter TOTP code" in err
    assert "MFA verified" not in err  # verified in the browser, not here
    assert term.out.getvalue() == f"Logged in as {MFA_USER}\n"
    assert term.entry()["mfa_verified"] is True


async def test_rgw_never_sends_a_code_of_its_own(tmp_path: Path, deployed_gateway: RunningGateway) -> None:
    """While the browser rests on the MFA page, polls go on and not one ``/auth/cli/mfa`` comes from rgw
    (a request of its own would take the authorization-code exchange from the browser)."""
    gw = deployed_gateway
    secret = gw.gateway.totp_secret(MFA_USER)
    extra: list[int] = []

    async def hold_the_mfa_page() -> None:
        mfa_requests = gw.gateway.request_count("/api/v1/auth/cli/mfa")
        polls = gw.gateway.request_count("/api/v1/auth/cli/complete")
        with anyio.fail_after(15):
            while gw.gateway.request_count("/api/v1/auth/cli/complete") < polls + 3:
                await anyio.sleep(0.05)
        extra.append(gw.gateway.request_count("/api/v1/auth/cli/mfa") - mfa_requests)

    browser = GatedBrowser(totp_secret=secret, mfa_gate=hold_the_mfa_page)
    term = Terminal(tmp_path, browser, "--mfa-method", "totp")
    async with running_login(term, gw):
        pass
    assert term.exit_code == 0, term.err.getvalue()
    assert extra == [0]


async def test_a_given_code_is_not_sent_to_the_racks_of_a_multi_rack_login(tmp_path: Path) -> None:
    """One ``--mfa-code`` for many racks would go to several gateways: on deployed gateways it goes to
    none (MFA in the browser, as before); nothing is sent, nothing counted in the ledger."""
    with (
        running_gateway(GatewaySettings(extensions=False)) as one,
        running_gateway(GatewaySettings(extensions=False)) as two,
    ):
        config = tmp_path / "cfg"
        config.mkdir(mode=0o700)
        gateways = {"a": {"url": one.url}, "b": {"url": two.url}}
        (config / "config.json").write_text(json.dumps({"current": "a", "gateways": gateways}))
        (config / "config.json").chmod(0o600)
        err, out = io.StringIO(), io.StringIO()
        app = App(
            options=Options(config_dir=config),
            environ={},
            out=out,
            err=err,
            browser=ScriptedBrowser(email=MFA_USER),  # signs in at each rack, stops on its MFA page
            interactive=False,
        )
        code = await run(["--mfa-code", "000000", "login", "--rack", "a", "--rack", "b", "--timeout", "6"], obj=app)
        assert code == 11, err.getvalue()  # every rack failed: its sign-in was left on the MFA page
        assert [line.split()[:2] for line in out.getvalue().splitlines()[1:]] == [["a", "failed"], ["b", "failed"]]
        assert out.getvalue().count("timed out") == 2
        assert "MFA verification failed" not in err.getvalue()
        assert not (config / "mfa-attempts.json").exists()


async def test_a_session_that_verified_mfa_before_makes_the_line_say_so(
    tmp_path: Path, deployed_gateway: RunningGateway
) -> None:
    """No option says so, but the session this login replaces verified MFA at this gateway."""
    gw = deployed_gateway
    secret = gw.gateway.totp_secret(MFA_USER)
    first = Terminal(tmp_path, GatedBrowser(totp_secret=secret))
    async with running_login(first, gw):
        pass
    assert first.exit_code == 0, first.err.getvalue()
    assert "MFA verification required." not in first.err.getvalue()  # not known yet
    assert first.entry()["mfa_verified"] is True

    browser = GatedBrowser()
    again = Terminal(tmp_path, browser)
    async with running_login(again, gw):
        await again.err.seen("Enter TOTP code (here, or in the browser once signed in):")
        await browser.at_mfa.wait()
        again.type(totp(gw, later=1))  # the first login used this step's code
    assert again.exit_code == 0, again.err.getvalue()
    assert "MFA verification required." in again.err.getvalue()
    assert "MFA verified" in again.err.getvalue()


async def test_a_given_code_is_sent_no_more_once_it_cannot_be_valid(
    tmp_path: Path, deployed_gateway: RunningGateway
) -> None:
    """``--mfa-code`` (a wrong one here) goes out after each poll only for ``given_code_for`` seconds; after
    that the browser signs in and finishes MFA itself, and the login completes: had the code been sent
    once the sign-in was done, the gateway would have refused it and the login would have failed."""
    gw = deployed_gateway
    recorder = Recorder()

    class AfterTheCodeExpired(ScriptedBrowser):
        async def open(self, url: str) -> bool:
            await recorder.first(ev.MfaCodeUnused)
            return await super().open(url)

    async with GatewayClient(gw.url) as client:
        flow = LoginFlow(
            client=client,
            store=ConfigStore(tmp_path / "cfg"),
            browser=AfterTheCodeExpired(email=MFA_USER, totp_secret=gw.gateway.totp_secret(MFA_USER)),
            device=device_on("dev-host"),
            emit=recorder,
            options=LoginOptions(timeout=30, given_code_for=1.0),
            mfa=LoginMfa("dev", settings=MfaSettings(code="000000")),
        )
        session = await flow.run("dev")
    assert session.email == MFA_USER
    assert session.mfa_verified
    assert ev.MfaVerified not in {type(e) for e in recorder.events}  # verified in the browser
    assert recorder.of(ev.Waiting)[0] == ev.Waiting("dev", "browser", "given")
