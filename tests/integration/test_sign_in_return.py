"""Where a sign-in returns to (issue 20, item 2): one rack's gateway cannot harvest another's session.

A hostile gateway ``evil`` answers ``/auth/cli/start`` with the ``auth_url`` it got from a real
reference gateway ``a`` and polls ``a``'s ``/complete`` itself: the user's sign-in would hand it a
session for ``a``.  The CLI checks where each sign-in returns to (its ``redirect_uri``; without one,
a sign-in served by another rack's gateway of the same command is one too): on the rack's own gateway
all is well; on another rack's gateway of the same command that rack is refused; elsewhere the tab
never goes there without a click, the terminal and the page say where it returns, and the host is
remembered for the rack (trust on first use): a later change is refused until accepted with
``login RACK --accept-redirect HOST``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from rgw.testing.server import running_app
from tests.integration.conftest import Cli
from tests.oidc_provider import Provider

pytestmark = pytest.mark.anyio

DEVICE = {"device_id": "0b7c62a4-4f4e-4a3c-9d6f-0a8f2b1c9e11", "device_name": "evil-box"}


class EvilGateway:
    """Answers ``/start`` with the victim gateway's ``auth_url`` (its own state for the CLI) and, on
    each ``/complete`` of the CLI, polls the victim's ``/complete`` for the stolen login itself."""

    def __init__(self, victim: str, *, loopback: bool = True) -> None:
        self.victim = victim
        self.loopback = loopback
        self.stolen: list[dict[str, str]] = []
        self.harvested: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/api/v1/auth/cli/start", self.on_start, methods=["POST"]),
                Route("/api/v1/auth/cli/complete", self.on_complete, methods=["POST"]),
            ]
        )

    async def on_start(self, request: Request) -> JSONResponse:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            answer = (await http.post(self.victim + "/api/v1/auth/cli/start", json={})).json()
        self.stolen.append(answer)
        body: dict[str, Any] = {
            "auth_url": answer["auth_url"],
            "state": secrets.token_urlsafe(32),
            "code_verifier": secrets.token_urlsafe(64),
        }
        if self.loopback:
            body["loopback"] = True  # so that the walk hops to it like to any extension gateway's
        return JSONResponse(body)

    async def on_complete(self, request: Request) -> JSONResponse:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            for stolen in self.stolen:
                body = {"state": stolen["state"], "code_verifier": stolen["code_verifier"], **DEVICE}
                answer = await http.post(self.victim + "/api/v1/auth/cli/complete", json=body)
                if answer.status_code == 200:
                    self.harvested.append(answer.json()["token"])
        return JSONResponse({"status": "pending"}, status_code=202)


class CountingBrowser:
    def __init__(self, inner: ScriptedBrowser | None = None) -> None:
        self.inner = inner or ScriptedBrowser(email="developer@example.com")
        self.opened: list[str] = []

    async def open(self, url: str) -> bool:
        self.opened.append(url)
        return await self.inner.open(url)


def seed(cli: Cli, racks: dict[str, dict[str, Any]]) -> None:
    cli.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (cli.config_dir / "config.json").write_text(json.dumps({"gateways": racks}))
    (cli.config_dir / "config.json").chmod(0o600)


def host_of(url: str) -> str:
    return urlsplit(url).netloc


# -- a hostile gateway forwarding a real gateway's sign-in ------------------------------------------


@pytest.mark.parametrize("walk", [True, False], ids=["one-tab walk", "a tab per rack"])
async def test_a_gateway_cannot_hand_out_another_rack_s_sign_in(cli: Cli, gateway: RunningGateway, walk: bool) -> None:
    evil = EvilGateway(gateway.url)
    with running_app(evil.app) as evil_url:
        seed(cli, {"a": {"url": gateway.url}, "evil": {"url": evil_url}})
        browser = CountingBrowser()
        args = ["login", "--all", "--json", "--timeout", "30"] + ([] if walk else ["--no-loopback"])
        result = await cli(*args, browser=browser)
    outcome = {r["rack"]: r for r in json.loads(result.out)}
    assert evil.stolen, "the hostile gateway was asked for a login"
    stolen_state = evil.stolen[0]["state"]
    # The user signed in only to a's own login: the stolen sign-in was never opened, evil holds nothing.
    assert not any(stolen_state in url for url in browser.inner.visited), browser.inner.visited
    assert evil.harvested == []
    assert result.code == 11, result.err
    assert (outcome["a"]["ok"], outcome["a"]["email"]) == (True, "developer@example.com")
    assert outcome["evil"]["ok"] is False
    assert outcome["evil"]["exit_code"] == 7
    assert outcome["evil"]["error"] == (
        f"the sign-in evil's gateway gave is served by rack a's gateway ({host_of(gateway.url)}): "
        "it would log that gateway, not evil's, in"
    )
    assert "Error: " in result.err
    assert "token" not in cli.config()["gateways"]["evil"]


async def test_a_redirect_uri_to_another_rack_s_gateway_is_refused(
    cli: Cli, oidc_provider: Provider, deployed_gateway: RunningGateway
) -> None:
    """A deployed gateway's auth_url is the identity provider's, with ``redirect_uri`` on the gateway:
    an existing session at the provider signs in without a click, and the code goes to ``a``."""
    settings = GatewaySettings(oidc_issuer=oidc_provider.url, oidc_client_secret="gw-secret", extensions=False)
    with running_gateway(settings) as a:
        evil = EvilGateway(a.url, loopback=False)
        with running_app(evil.app) as evil_url:
            seed(cli, {"a": {"url": a.url}, "evil": {"url": evil_url}, "b": {"url": deployed_gateway.url}})
            browser = CountingBrowser()
            result = await cli("login", "--all", "--json", "--no-browser", "--timeout", "3", browser=browser)
    assert evil.stolen
    redirect = urlsplit(evil.stolen[0]["auth_url"])
    # The provider's URL, returning to a's callback.
    assert f"redirect_uri={quote(a.url + '/api/v1/auth/cli/callback', safe='')}" in redirect.query
    outcome = {r["rack"]: r for r in json.loads(result.out)}
    assert outcome["evil"]["exit_code"] == 7
    assert outcome["evil"]["error"] == (
        f"the sign-in evil's gateway gave returns to rack a's gateway ({host_of(a.url)}): "
        "it would log that gateway, not evil's, in"
    )
    assert evil.stolen[0]["state"] not in result.err  # never shown, never opened
    assert browser.opened == []
    assert evil.harvested == []


# -- a legitimate sign-in returning elsewhere: trust on first use --------------------------------------


class ElsewhereGateway:
    """A gateway reached at one address whose sign-in returns to its public ``domain`` (a Tailscale
    address of a gateway whose DOMAIN differs): the provider's URL with that ``redirect_uri``."""

    def __init__(self, domain: str, *, loopback: bool = False) -> None:
        self.domain = domain
        self.loopback = loopback
        self.requests: list[str] = []
        self.signed_in = anyio.Event()
        self.sign_in_needed = False
        self.app = Starlette(
            routes=[
                Route("/api/v1/auth/cli/start", self.on_start, methods=["POST"]),
                Route("/api/v1/auth/cli/complete", self.on_complete, methods=["POST"]),
            ]
        )

    def auth_url(self, state: str) -> str:
        callback = quote(f"https://{self.domain}/api/v1/auth/cli/callback", safe="")
        return f"https://idp.example.test/o/oauth2/auth?client_id=gw&redirect_uri={callback}&state={state}"

    async def on_start(self, request: Request) -> JSONResponse:
        self.requests.append("start")
        state = secrets.token_urlsafe(32)
        body: dict[str, Any] = {"auth_url": self.auth_url(state), "state": state, "code_verifier": "v" * 43}
        if self.loopback:
            body["loopback"] = True
        return JSONResponse(body)

    async def on_complete(self, request: Request) -> JSONResponse:
        self.requests.append("complete")
        if self.sign_in_needed and not self.signed_in.is_set():
            return JSONResponse({"status": "pending"}, status_code=202)
        session = {
            "token": "sess-" + secrets.token_urlsafe(16),
            "email": "developer@example.com",
            "expires_at": "2030-01-01T00:00:00Z",
            "session_id": 7,
            "channel": "cli",
        }
        return JSONResponse(session)


@contextmanager
def elsewhere(domain: str, **kwargs: Any) -> Iterator[tuple[ElsewhereGateway, str]]:
    gw = ElsewhereGateway(domain, **kwargs)
    with running_app(gw.app) as url:
        yield gw, url


class RecordingBrowser:
    def __init__(self) -> None:
        self.opened: list[str] = []

    async def open(self, url: str) -> bool:
        self.opened.append(url)
        return True


async def test_a_sign_in_returning_elsewhere_is_trusted_on_first_use_then_pinned(cli: Cli) -> None:
    with elsewhere("gw.example.test") as (gw, url):
        browser = RecordingBrowser()
        first = await cli("login", "ts", url, "--timeout", "20", browser=browser)
        assert first.code == 0, first.err
        # First use: not opened without the user's click; the terminal says where it returns.
        assert browser.opened == []
        assert (
            "The sign-in returns to gw.example.test, not to this rack's gateway "
            f"({host_of(url)}): first use, remembered for this rack from now on." in first.err
        )
        assert (
            "Open this URL in your browser if gw.example.test is this rack's gateway: "
            "https://idp.example.test/o/oauth2/auth?client_id=gw&redirect_uri=" in first.err
        )
        entry = cli.config()["gateways"]["ts"]
        assert entry["sign_in_return"] == "https://gw.example.test:443"
        # The same again: remembered, so the browser opens as usual (and the terminal still says it).
        again = await cli("login", "ts", "--timeout", "20", browser=browser)
        assert again.code == 0, again.err
        assert len(browser.opened) == 1
        assert "The sign-in returns to gw.example.test (remembered for this rack)" in again.err
    token = cli.config()["gateways"]["ts"]["token"]
    # The gateway now sends its sign-in somewhere else: refused, nothing polled, nothing changed.
    with elsewhere("attacker.example.test") as (gw, url2):
        seed_url = cli.config()
        seed_url["gateways"]["ts"]["url"] = url2
        (cli.config_dir / "config.json").write_text(json.dumps(seed_url))
        browser = RecordingBrowser()
        changed = await cli("login", "ts", "--timeout", "20", browser=browser)
        assert changed.code == 7, changed.err
        assert gw.requests == ["start"]
        assert browser.opened == []
        assert (
            "Error: the sign-in of rack ts now returns to attacker.example.test; it returned to "
            "gw.example.test before" in changed.err
        )
        assert "rack-gateway login ts --accept-redirect attacker.example.test" in changed.err
        assert cli.config()["gateways"]["ts"]["token"] == token
        assert cli.config()["gateways"]["ts"]["sign_in_return"] == "https://gw.example.test:443"
        # Accepting some other host does not accept this one.
        wrong = await cli("login", "ts", "--accept-redirect", "other.example.test", "--timeout", "20")
        assert wrong.code == 7, wrong.err
        assert cli.config()["gateways"]["ts"]["token"] == token
        # Accepted by name: the login goes on and the new host is remembered.
        accepted = await cli("login", "ts", "--accept-redirect", "attacker.example.test", "--timeout", "20")
        assert accepted.code == 0, accepted.err
        assert "The sign-in returns to attacker.example.test (accepted, remembered from now on)" in accepted.err
        assert cli.config()["gateways"]["ts"]["sign_in_return"] == "https://attacker.example.test:443"
        assert cli.config()["gateways"]["ts"]["token"] != token


async def test_the_walk_offers_a_sign_in_returning_elsewhere_as_a_link_never_a_hop(
    cli: Cli, gateway: RunningGateway
) -> None:
    with elsewhere("gw.example.test", loopback=True) as (ts, url):
        ts.sign_in_needed = True
        seed(cli, {"a-ts": {"url": url}, "b": {"url": gateway.url}})
        inner = ScriptedBrowser(email="developer@example.com", follow_links=False)

        class Browser:
            def __init__(self) -> None:
                self.opened: list[str] = []

            async def open(self, page: str) -> bool:
                self.opened.append(page)
                try:
                    return await inner.open(page)
                finally:
                    ts.signed_in.set()  # the user signs in at the link afterwards

        browser = Browser()
        result = await cli("login", "--all", "--json", "--timeout", "30", browser=browser)
    assert result.code == 0, result.err
    assert len(browser.opened) == 1
    # The tab went to b's sign-in (a hop) and never to a-ts's, although its gateway claims to send it back.
    assert not any("idp.example.test" in visited for visited in inner.visited), inner.visited
    assert inner.sign_ins == 1
    page = next(p for p in inner.walk_pages if "idp.example.test" in p)
    assert "returns to gw.example.test, not to this rack&#x27;s gateway" in page
    assert "[a-ts] The sign-in returns to gw.example.test, not to this rack's gateway" in result.err
    assert cli.config()["gateways"]["a-ts"]["sign_in_return"] == "https://gw.example.test:443"
