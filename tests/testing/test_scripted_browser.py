"""`ScriptedBrowser` against the reference gateway, on both anyio backends."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pyotp
import pytest

from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from rgw.testing.browser import BrowserError

from .gateway_helpers import CLI_MFA, COMPLETE, START, complete_body

pytestmark = pytest.mark.anyio


@pytest.fixture
def gw() -> Iterator[RunningGateway]:
    with running_gateway() as running:
        yield running


async def test_sign_in_end_to_end(gw: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gw.url) as client:
        start = (await client.post(START)).json()
        browser = ScriptedBrowser("viewer@example.com")
        await browser.open(start["auth_url"])
        assert browser.visited[0] == start["auth_url"]
        assert browser.visited[1] == f"{gw.url}/oauth/authorize"
        assert browser.visited[2].startswith(f"{gw.url}/api/v1/auth/cli/callback?code=")
        assert "Login complete, return to your terminal" in browser.last_page
        r = await client.post(COMPLETE, json=complete_body(start))
        assert (r.status_code, r.json()["email"]) == (200, "viewer@example.com")


async def test_mfa_page_with_totp_secret(gw: RunningGateway) -> None:
    secret = gw.gateway.totp_secret("mfa@example.com")
    async with httpx.AsyncClient(base_url=gw.url) as client:
        start = (await client.post(START)).json()
        browser = ScriptedBrowser("mfa@example.com", totp_secret=secret, delay=0.01)
        await browser.open(start["auth_url"])
        assert f"{gw.url}/auth/mfa?state={start['state']}" in browser.visited
        assert browser.visited[-1] == f"{gw.url}/auth/mfa"  # the code's POST answers the done page
        assert "Login complete, return to your terminal" in browser.last_page
        body = (await client.post(COMPLETE, json=complete_body(start))).json()
        assert (body["email"], body["mfa_verified"]) == ("mfa@example.com", True)


async def test_mfa_page_without_secret_leaves_mfa_to_the_cli(gw: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gw.url) as client:
        start = (await client.post(START)).json()
        browser = ScriptedBrowser("mfa@example.com")
        await browser.open(start["auth_url"])
        assert 'name="code"' in browser.last_page
        pending = (await client.post(COMPLETE, json=complete_body(start))).json()
        assert pending["stage"] == "mfa"


async def test_loopback_redirect_is_followed(gw: RunningGateway) -> None:
    # the gateway itself listens on 127.0.0.1, so it can play the CLI's loopback listener
    loopback = f"{gw.url}/auth/done"
    async with httpx.AsyncClient(base_url=gw.url) as client:
        start = (await client.post(START, json={"loopback_uri": loopback})).json()
        browser = ScriptedBrowser()
        await browser.open(start["auth_url"])
        assert browser.visited[-1] == f"{loopback}?state={start['state']}&result=ok"
        cancelled = (await client.post(START, json={"loopback_uri": loopback})).json()
        browser = ScriptedBrowser(action="cancel")
        await browser.open(cancelled["auth_url"])
        assert browser.visited[-1].endswith("&result=error&error=consent%20cancelled")
        r = await client.post(COMPLETE, json=complete_body(cancelled))
        assert r.json() == {"error": "consent cancelled"}


async def test_no_form_is_an_error(gw: RunningGateway) -> None:
    with pytest.raises(BrowserError, match="no sign-in form"):
        await ScriptedBrowser().open(f"{gw.url}/oauth/authorize?state=unknown")


@pytest.fixture
def deployed() -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=False, rate_limit=None)) as running:
        yield running


async def test_stop_at_mfa_leaves_the_code_to_the_terminal(deployed: RunningGateway) -> None:
    secret = deployed.gateway.totp_secret("mfa@example.com")
    assert secret is not None
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=deployed.url) as client:
        start = (await client.post(START)).json()
        browser = ScriptedBrowser("mfa@example.com", totp_secret=secret, stop_at_mfa=True, on_mfa_page=seen.append)
        await browser.open(start["auth_url"])
        mfa_page = f"{deployed.url}/auth/mfa?state={start['state']}"
        assert seen == browser.mfa_pages == [mfa_page]
        assert browser.visited[-1] == mfa_page  # no code posted, though it has the secret
        assert 'name="code"' in browser.last_page
        assert (await client.post(COMPLETE, json=complete_body(start))).json() == {"status": "pending"}
        # the browser made its own step: the terminal's code finds the exchange done, not taken
        r = await client.post(
            CLI_MFA, json={"state": start["state"], "method": "totp", "code": pyotp.TOTP(secret).now()}
        )
        assert r.json() == {"redirect": "/app/cli/auth/success"}
        assert (await client.post(COMPLETE, json=complete_body(start))).json()["mfa_verified"] is True


async def test_on_mfa_page_is_called_before_the_code_is_posted(gw: RunningGateway) -> None:
    secret = gw.gateway.totp_secret("mfa@example.com")
    async with httpx.AsyncClient(base_url=gw.url) as client:
        start = (await client.post(START)).json()
        stages: list[object] = []

        def at_mfa(url: str) -> None:
            state = gw.gateway.login.state(start["state"])
            stages.append((url, state.stage if state else None))

        browser = ScriptedBrowser("mfa@example.com", totp_secret=secret, on_mfa_page=at_mfa)
        await browser.open(start["auth_url"])
        assert stages == [(f"{gw.url}/auth/mfa?state={start['state']}", "mfa")]
        assert "Login complete" in browser.last_page


async def test_the_command_stops_at_mfa_and_says_so_in_a_file(deployed: RunningGateway, tmp_path: Path) -> None:
    secret = deployed.gateway.totp_secret("mfa@example.com")
    assert secret is not None
    mark = tmp_path / "at-mfa"
    async with httpx.AsyncClient(base_url=deployed.url) as client:
        start = (await client.post(START)).json()
        command = [sys.executable, "-m", "rgw.testing.scripted_browser", "--email", "mfa@example.com"]
        command += ["--totp-secret", secret, "--stop-at-mfa", "--at-mfa-file", str(mark), start["auth_url"]]
        done = await anyio.run_process(command, check=False)
        assert done.returncode == 0, done.stderr
        assert mark.read_text() == f"{deployed.url}/auth/mfa?state={start['state']}\n"
        assert list(tmp_path.iterdir()) == [mark]  # no partial file left
        assert (await client.post(COMPLETE, json=complete_body(start))).json() == {"status": "pending"}
