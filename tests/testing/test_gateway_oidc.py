"""The reference gateway signing users in through a real OpenID Connect provider (oidc-provider-mock).

httpx plays the browser on the provider's page (the browser tier does it in Chromium): the gateway
discovers the provider, sends the browser there with PKCE S256 and a nonce (the provider runs with
``--require-nonce``), exchanges the code, checks the ID token and the allowed domain, and the login
goes on exactly as with the built-in page: MFA, early failure with extensions, a pending login
without them.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from tests.oidc_provider import Provider, follow, sign_in

from .gateway_helpers import COMPLETE, START, complete_body

CALLBACK = "/api/v1/auth/cli/callback"


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, trust_env=False) as client:
        yield client


def oidc_gateway(provider: Provider, **settings: Any) -> Any:
    return running_gateway(GatewaySettings(oidc_issuer=provider.url, oidc_client_secret="gw-secret", **settings))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def start_login(browser: httpx.Client, gw: RunningGateway, **body: Any) -> dict[str, Any]:
    answer = browser.post(gw.url + START, json=body)
    assert answer.status_code == 200, answer.text
    start: dict[str, Any] = answer.json()
    return start


def complete(browser: httpx.Client, gw: RunningGateway, start: dict[str, Any]) -> httpx.Response:
    return browser.post(gw.url + COMPLETE, json=complete_body(start))


@pytest.mark.parametrize("extensions", [True, False], ids=["extensions", "deployed"])
def test_start_sends_the_browser_to_the_provider_with_pkce_s256_and_a_nonce(
    oidc_provider: Provider, browser: httpx.Client, extensions: bool
) -> None:
    with oidc_gateway(oidc_provider, extensions=extensions, rate_limit=None) as gw:
        start = start_login(browser, gw)
        if extensions:
            # The gateway's own first hop remembers the login in this browser, then sends it on.
            assert start["auth_url"] == f"{gw.url}/auth/cli/begin?state={start['state']}"
            begin = browser.get(start["auth_url"])
            assert begin.status_code == 302
            cookie = begin.headers["set-cookie"]
            assert f"={start['state']};" in cookie
            assert "HttpOnly" in cookie
            assert "Path=/api/v1/auth/cli/callback" in cookie
            assert "SameSite=lax" in cookie
            provider_url = begin.headers["location"]
        else:
            provider_url = start["auth_url"]  # as the Go server: straight to the provider
        discovery = browser.get(oidc_provider.url + "/.well-known/openid-configuration").json()
        parts = urlsplit(provider_url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == discovery["authorization_endpoint"]
        query = query_of(provider_url)
        digest = hashlib.sha256(start["code_verifier"].encode()).digest()
        assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        assert query["code_challenge_method"] == "S256"
        assert (query["client_id"], query["response_type"], query["state"]) == ("rack-gateway", "code", start["state"])
        assert query["redirect_uri"] == gw.url + CALLBACK
        assert query["scope"].split() == ["openid", "email", "profile"]
        assert query["nonce"]
        assert query["hd"] == "example.com"
        # The built-in page would let anyone sign in as anyone: with a provider it is gone.
        assert browser.get(gw.url + "/oauth/authorize", params={"state": start["state"]}).status_code == 404
        forged = browser.post(gw.url + "/oauth/authorize", data={"state": start["state"], "email": "admin@example.com"})
        assert forged.status_code == 404


@pytest.mark.parametrize("extensions", [True, False], ids=["extensions", "deployed"])
def test_the_provider_s_user_is_the_one_logged_in(
    oidc_provider: Provider, browser: httpx.Client, extensions: bool
) -> None:
    with oidc_gateway(oidc_provider, extensions=extensions, rate_limit=None) as gw:
        start = start_login(browser, gw, device_name="dev-mbp")
        redirect = sign_in(browser, start["auth_url"], "deployer@example.com")
        assert redirect.headers["location"].startswith(gw.url + CALLBACK + "?code=")
        page = follow(browser, redirect)
        # Without extensions the callback only keeps the code, as the Go server does; GET /auth/cli/mfa signs in.
        assert str(page.url).startswith(
            gw.url + ("/api/v1/auth/cli/callback" if extensions else "/api/v1/auth/cli/mfa")
        )
        assert page.status_code == 200
        assert "Login complete, return to your terminal" in page.text
        assert "Signed in as <b>deployer@example.com</b>" in page.text
        assert "rack <b>dev</b>" in page.text
        assert ("on <b>dev-mbp</b>" in page.text) is extensions  # the device is an extension
        done = complete(browser, gw, start)
        assert done.status_code == 200, done.text
        assert (done.json()["email"], done.json()["mfa_verified"]) == ("deployer@example.com", False)
        assert gw.gateway.session_valid(done.json()["token"])


def test_mfa_follows_the_provider_s_sign_in(oidc_provider: Provider, browser: httpx.Client) -> None:
    with oidc_gateway(oidc_provider) as gw:
        start = start_login(browser, gw)
        page = follow(browser, sign_in(browser, start["auth_url"], "mfa@example.com"))
        assert str(page.url).startswith(gw.url + "/auth/mfa?state=")
        assert "Signed in as <b>mfa@example.com</b>" in page.text
        pending = complete(browser, gw, start)
        assert pending.status_code == 202
        assert pending.json()["stage"] == "mfa"
        secret = gw.gateway.totp_secret("mfa@example.com")
        assert secret is not None
        posted = browser.post(gw.url + "/auth/mfa", data={"state": start["state"], "code": pyotp.TOTP(secret).now()})
        assert "Login complete" in follow(browser, posted).text
        done = complete(browser, gw, start)
        assert done.status_code == 200, done.text
        assert (done.json()["email"], done.json()["mfa_verified"]) == ("mfa@example.com", True)


@pytest.mark.parametrize(
    ("sub", "claims", "error"),
    [
        pytest.param("mallory@evil.com", None, "email domain not allowed: mallory@evil.com", id="email-domain"),
        # Google says which Workspace the account belongs to; an address alone does not make it ours.
        pytest.param(
            "hd-user@example.com",
            {"email": "hd-user@example.com", "hd": "evil.com"},
            "email domain not allowed: hd-user@example.com",
            id="hosted-domain",
        ),
        pytest.param(
            "unverified@example.com",
            {"email": "unverified@example.com", "email_verified": False},
            "sign-in with the identity provider failed: email address not verified: unverified@example.com",
            id="unverified-email",
        ),
        pytest.param("stranger@example.com", None, "User not authorized for this gateway.", id="unknown-user"),
    ],
)
def test_a_refused_identity_fails_the_login_at_once_with_extensions(
    oidc_provider: Provider, browser: httpx.Client, sub: str, claims: dict[str, Any] | None, error: str
) -> None:
    if claims is not None:
        oidc_provider.put_user(sub, claims)
    with oidc_gateway(oidc_provider) as gw:
        start = start_login(browser, gw)
        page = follow(browser, sign_in(browser, start["auth_url"], sub))
        assert page.status_code == 403
        assert "Sign-in failed" in page.text
        assert "has stopped with this error" in page.text
        answer = complete(browser, gw, start)
        assert (answer.status_code, answer.json()) == (400, {"error": error})
        assert gw.gateway.store.rows("SELECT id FROM sessions") == []


def test_a_refused_identity_leaves_a_deployed_login_pending(oidc_provider: Provider, browser: httpx.Client) -> None:
    with oidc_gateway(oidc_provider, extensions=False, rate_limit=None) as gw:
        start = start_login(browser, gw)
        page = follow(browser, sign_in(browser, start["auth_url"], "mallory@evil.com"))
        assert page.status_code == 403
        assert "email domain not allowed: mallory@evil.com" in page.text
        assert "is still waiting: press Ctrl-C there" in page.text
        assert complete(browser, gw, start).status_code == 202  # the CLI is told nothing
        state = gw.gateway.login.state(start["state"])
        assert state is not None
        assert (state.stage, state.email) == ("browser", "mallory@evil.com")


def test_consent_denied_at_the_provider(oidc_provider: Provider, browser: httpx.Client) -> None:
    with oidc_gateway(oidc_provider) as gw:
        start = start_login(browser, gw)
        redirect = sign_in(browser, start["auth_url"], None, deny=True)
        # oidc-provider-mock 0.3 leaves `state` out of its error answer: the login cookie tells which login it was.
        assert query_of(redirect.headers["location"])["error"] == "access_denied"
        page = follow(browser, redirect)
        assert page.status_code == 403
        assert "consent cancelled" in page.text
        answer = complete(browser, gw, start)
        assert (answer.status_code, answer.json()) == (400, {"error": "consent cancelled"})
    with oidc_gateway(oidc_provider, extensions=False, rate_limit=None) as gw:
        start = start_login(browser, gw)
        page = follow(browser, sign_in(browser, start["auth_url"], None, deny=True))
        assert (page.status_code, page.text) == (400, "Missing code or state")  # the Go server's answer
        assert complete(browser, gw, start).status_code == 202


def test_a_forged_callback_code_is_refused_by_the_provider(oidc_provider: Provider, browser: httpx.Client) -> None:
    with oidc_gateway(oidc_provider) as gw:
        start = start_login(browser, gw)
        page = browser.get(gw.url + CALLBACK, params={"state": start["state"], "code": "made-up"})
        assert page.status_code == 403
        assert "the identity provider refused the code (invalid_grant)" in page.text
        answer = complete(browser, gw, start)
        assert answer.json() == {
            "error": "sign-in with the identity provider failed: the identity provider refused the code (invalid_grant)"
        }


def test_an_unreachable_provider_fails_start_with_500(browser: httpx.Client) -> None:
    with socket.socket() as sock:  # a port nothing listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with running_gateway(GatewaySettings(oidc_issuer=f"http://127.0.0.1:{port}", oidc_timeout=2)) as gw:
        answer = browser.post(gw.url + START, json={})
        assert answer.status_code == 500
        assert answer.json() == {
            "error": "OAuth not available: identity provider unreachable (discovery: ConnectError)"
        }


def test_an_error_without_state_fails_no_login_it_cannot_tell_apart(
    oidc_provider: Provider, browser: httpx.Client
) -> None:
    with oidc_gateway(oidc_provider) as gw:
        first, second = start_login(browser, gw), start_login(browser, gw)
        for start in (first, second):  # this browser began both: two login cookies
            assert browser.get(start["auth_url"]).status_code == 302
        page = browser.get(gw.url + CALLBACK, params={"error": "access_denied"})
        assert page.status_code == 400
        assert "invalid or expired state" in page.text
        for start in (first, second):
            assert complete(browser, gw, start).status_code == 202
        with httpx.Client(timeout=30, trust_env=False) as stranger:  # no cookie at all
            assert stranger.get(gw.url + CALLBACK, params={"error": "access_denied"}).status_code == 400
        assert complete(browser, gw, first).status_code == 202
