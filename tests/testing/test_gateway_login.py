"""The login routes of the reference gateway, over real loopback sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway

from .gateway_helpers import COMPLETE, START, FakeClock, complete_body

ENROLL = "You must set up multi-factor authentication before you can continue using the CLI."


@pytest.fixture
def core() -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=False)) as running:
        yield running


def sign_in(client: httpx.Client, auth_url: str, email: str, action: str = "allow") -> httpx.Response:
    """GET the sign-in page, post it, and GET the callback; the callback's answer (with extensions),
    or that of the `GET /api/v1/auth/cli/mfa` it redirects to (without: the deployed two-step)."""
    page = client.get(auth_url)
    assert page.status_code == 200
    assert 'name="email" value="admin@example.com"' in page.text
    state = parse_qs(urlsplit(auth_url).query)["state"][0]
    posted = client.post("/oauth/authorize", data={"state": state, "email": email, "action": action})
    assert posted.status_code == 302
    answer = client.get(posted.headers["location"])
    if answer.status_code == 307:
        assert answer.headers["location"] == f"/api/v1/auth/cli/mfa?state={state}"
        answer = client.get(answer.headers["location"])
    return answer


def test_health(client: httpx.Client) -> None:
    assert client.get("/api/v1/health").json() == {"status": "ok"}


def test_start_shape(gw: RunningGateway, client: httpx.Client) -> None:
    body = client.post(START).json()
    assert len(body["state"]) == 43
    assert len(body["code_verifier"]) == 128
    assert body["auth_url"] == f"{gw.url}/oauth/authorize?state={body['state']}&client_id=rack-gateway"
    assert "loopback" not in body


def test_auth_url_follows_host_header(client: httpx.Client) -> None:
    body = client.post(START, headers={"Host": "gateway.example.test:8443"}).json()
    assert body["auth_url"].startswith("http://gateway.example.test:8443/oauth/authorize?state=")


def test_pending_then_ok(client: httpx.Client) -> None:
    start = client.post(START, json={}).json()
    r = client.post(COMPLETE, json=complete_body(start))
    assert (r.status_code, r.json()) == (202, {"status": "pending", "stage": "browser"})
    done = sign_in(client, start["auth_url"], "developer@example.com")
    assert done.status_code == 200
    assert "Login complete, return to your terminal" in done.text
    r = client.post(COMPLETE, json=complete_body(start))
    assert r.status_code == 200
    body = r.json()
    assert body["token"].startswith("rgw_sess_")
    assert body["email"] == "developer@example.com"
    assert body["channel"] == "cli"
    assert body["device_id"] == complete_body(start)["device_id"]
    assert body["device_name"] == "test-host"
    assert isinstance(body["session_id"], int)
    assert body["expires_at"].endswith("Z")
    assert (body["mfa_verified"], body["mfa_required"], body["enrollment_required"]) == (False, False, False)


def test_loopback_redirect_ok(client: httpx.Client) -> None:
    loopback = "http://127.0.0.1:5999/cb/xyz"
    start = client.post(START, json={"loopback_uri": loopback}).json()
    assert start["loopback"] is True
    page = client.get(start["auth_url"])
    assert page.status_code == 200
    posted = client.post(
        "/oauth/authorize", data={"state": start["state"], "email": "viewer@example.com", "action": "allow"}
    )
    r = client.get(posted.headers["location"])
    assert r.status_code == 302
    assert r.headers["location"] == f"{loopback}?state={start['state']}&result=ok"


@pytest.mark.parametrize(
    "uri",
    ["http://example.com:80/x", "https://127.0.0.1:5000/x", "http://127.0.0.1/x", "http://localhost.evil.com:80/", 42],
)
def test_loopback_uri_rejected(client: httpx.Client, uri: object) -> None:
    r = client.post(START, json={"loopback_uri": uri})
    assert (r.status_code, r.json()) == (400, {"error": "invalid loopback_uri"})


@pytest.mark.parametrize("uri", ["http://[::1]:8123/p", "http://localhost:8123/p?x=1"])
def test_loopback_uri_accepted(client: httpx.Client, uri: str) -> None:
    assert client.post(START, json={"loopback_uri": uri}).json()["loopback"] is True


def test_loopback_redirect_error_on_cancel(client: httpx.Client) -> None:
    loopback = "http://localhost:6000/done"
    start = client.post(START, json={"loopback_uri": loopback}).json()
    r = sign_in(client, start["auth_url"], "developer@example.com", action="cancel")
    assert r.status_code == 302
    assert r.headers["location"] == f"{loopback}?state={start['state']}&result=error&error=consent%20cancelled"
    r = client.post(COMPLETE, json=complete_body(start))
    assert (r.status_code, r.json()) == (400, {"error": "consent cancelled"})
    r = client.post(COMPLETE, json=complete_body(start))
    assert r.json() == {"error": "invalid or expired state"}


def test_domain_not_allowed_fails_at_once_ext(client: httpx.Client) -> None:
    start = client.post(START).json()
    r = sign_in(client, start["auth_url"], "eve@evil.test")
    assert r.status_code == 403
    assert "email domain not allowed: eve@evil.test" in r.text
    r = client.post(COMPLETE, json=complete_body(start))
    assert (r.status_code, r.json()) == (400, {"error": "email domain not allowed: eve@evil.test"})


def test_unknown_user_fails_ext(client: httpx.Client) -> None:
    start = client.post(START).json()
    sign_in(client, start["auth_url"], "nobody@example.com")
    r = client.post(COMPLETE, json=complete_body(start))
    assert (r.status_code, r.json()) == (400, {"error": "User not authorized for this gateway."})


def test_mfa_required_not_enrolled(gw: RunningGateway, client: httpx.Client) -> None:
    gw.gateway.add_user("need@example.com", roles=("viewer",), mfa_required=True)
    start = client.post(START).json()
    gw.gateway.complete_browser_login(start["state"], "need@example.com")
    r = client.post(COMPLETE, json=complete_body(start))
    assert (r.status_code, r.json()) == (400, {"error": ENROLL})


def test_complete_validation(client: httpx.Client) -> None:
    start = client.post(START).json()
    for bad in (
        {},
        {"state": start["state"]},
        {"state": start["state"], "code_verifier": "x"},
        complete_body(start, device_name=7),
    ):
        r = client.post(COMPLETE, json=bad)
        assert (r.status_code, r.json()) == (400, {"error": "invalid request"})
    for raw in (b"{not json", b"[1, 2]", b"", b"\xff\xfe"):
        r = client.post(COMPLETE, content=raw, headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()) == (400, {"error": "invalid request"})
    r = client.post(COMPLETE, json=complete_body(start, device_id="my-laptop"))
    assert (r.status_code, r.json()) == (500, {"error": "internal server error"})
    r = client.post(COMPLETE, json=complete_body({"state": "nope", "code_verifier": "x"}))
    assert (r.status_code, r.json()) == (400, {"error": "invalid or expired state"})


def test_garbage_elsewhere(client: httpx.Client) -> None:
    r = client.post(START, content=b"{oops", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (400, {"error": "invalid request"})
    r = client.post("/api/v1/auth/cli/mfa", content=b"\x00\x01")
    assert (r.status_code, r.json()) == (400, {"error": "invalid request"})
    assert client.get("/no/such/route").status_code == 404
    assert client.get("/api/v1/auth/cli/callback?state=unknown&code=x").status_code == 400
    assert client.get("/oauth/authorize?state=unknown").status_code == 400
    assert client.post("/oauth/authorize", content=b"%%%").status_code == 400


def test_code_verifier_checked_ext(gw: RunningGateway, client: httpx.Client) -> None:
    start = client.post(START).json()
    gw.gateway.complete_browser_login(start["state"], "developer@example.com")
    r = client.post(COMPLETE, json=complete_body(start, code_verifier="wrong"))
    assert (r.status_code, r.json()) == (400, {"error": "invalid code_verifier"})
    assert client.post(COMPLETE, json=complete_body(start)).status_code == 200


def test_idempotent_completion_ext(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    start = client.post(START).json()
    gw.gateway.complete_browser_login(start["state"], "developer@example.com")
    assert gw.gateway.login_completed_at(start["state"]) == clock()
    first = client.post(COMPLETE, json=complete_body(start))
    clock.advance(59)
    again = client.post(COMPLETE, json=complete_body(start))
    assert (again.status_code, again.json()) == (200, first.json())
    wrong = client.post(COMPLETE, json=complete_body(start, code_verifier="other"))
    assert wrong.json() == {"error": "invalid code_verifier"}
    clock.advance(2)
    late = client.post(COMPLETE, json=complete_body(start))
    assert (late.status_code, late.json()) == (400, {"error": "invalid or expired state"})


def test_core_mode(core: RunningGateway) -> None:
    with httpx.Client(base_url=core.url, timeout=30) as client:
        start = client.post(START, json={"loopback_uri": "http://127.0.0.1:5000/x"}).json()
        assert "loopback" not in start
        pending = client.post(COMPLETE, json=complete_body(start, wait=5))
        assert (pending.status_code, pending.json()) == (202, {"status": "pending"})
        # a rejected domain leaves the state pending on a deployed gateway
        r = sign_in(client, start["auth_url"], "eve@evil.test")
        assert r.status_code == 403
        assert "email domain not allowed" in r.text
        assert client.post(COMPLETE, json=complete_body(start)).status_code == 202
        # the same state can still be signed in; the verifier is never checked
        r = sign_in(client, start["auth_url"], "developer@example.com")
        assert "Login complete" in r.text
        ok = client.post(COMPLETE, json=complete_body(start, code_verifier="anything"))
        assert ok.status_code == 200
        assert (
            "X-Session-Expires-At"
            not in client.get("/api/v1/info", headers={"Authorization": f"Bearer {ok.json()['token']}"}).headers
        )
        again = client.post(COMPLETE, json=complete_body(start))
        assert (again.status_code, again.json()) == (400, {"error": "invalid or expired state"})
        # webauthn start at login is an extension
        assert client.post("/api/v1/auth/cli/mfa/webauthn/start", json={"state": "x"}).status_code == 404


def test_fail_browser_login_ext(gw: RunningGateway, client: httpx.Client) -> None:
    start = client.post(START).json()
    gw.gateway.fail_browser_login(start["state"], "consent cancelled")
    assert client.post(COMPLETE, json=complete_body(start)).json() == {"error": "consent cancelled"}


def test_request_counts(gw: RunningGateway, client: httpx.Client) -> None:
    gw.gateway.reset_counts()
    start = client.post(START).json()
    client.post(COMPLETE, json=complete_body(start))
    client.get("/api/v1/health")
    assert gw.gateway.request_count() == 2
    assert gw.gateway.request_count("/api/v1/") == 3
    gw.gateway.reset_counts()
    assert gw.gateway.request_count() == 0


async def answer_to_held_poll(gw: RunningGateway, sign_in: Callable[[str], None]) -> httpx.Response:
    """Start a login, hold its poll (up to 25 s), call ``sign_in(state)`` once it waits; the poll's answer."""
    import anyio

    async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
        start = (await client.post(START)).json()
        answers: list[httpx.Response] = []

        async def hold() -> None:
            answers.append(await client.post(COMPLETE, json=complete_body(start, wait=25)))

        # The poll is held up to 25 s; finishing well inside 15 s proves the sign-in woke it.
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(hold)
                while gw.gateway.watchers.waiting(start["state"]) == 0:
                    await anyio.sleep(0.01)
                sign_in(start["state"])
        return answers[0]


@pytest.mark.anyio
async def test_long_poll_wakes_on_completion(gw: RunningGateway) -> None:
    def sign_in_from_another_thread(state: str) -> None:
        # as a test or benchmark would
        t = threading.Thread(target=gw.gateway.complete_browser_login, args=(state, "developer@example.com"))
        t.start()
        t.join()

    answer = await answer_to_held_poll(gw, sign_in_from_another_thread)
    assert answer.status_code == 200
    assert answer.json()["email"] == "developer@example.com"


@pytest.mark.anyio
async def test_long_poll_wakes_on_failure(gw: RunningGateway) -> None:
    answer = await answer_to_held_poll(gw, lambda state: gw.gateway.complete_browser_login(state, "eve@evil.test"))
    expected = {"error": "email domain not allowed: eve@evil.test"}
    assert (answer.status_code, answer.json()) == (400, expected)


@pytest.mark.anyio
async def test_long_poll_answers_when_mfa_stage_begins(gw: RunningGateway) -> None:
    answer = await answer_to_held_poll(gw, lambda state: gw.gateway.complete_browser_login(state, "mfa@example.com"))
    assert (answer.status_code, answer.json()) == (202, {"status": "pending", "stage": "mfa", "mfa_methods": ["totp"]})


def test_long_poll_times_out_pending() -> None:
    with running_gateway(GatewaySettings(long_poll_max=0.05)) as gw, httpx.Client(base_url=gw.url) as client:
        start = client.post(START).json()
        r = client.post(COMPLETE, json=complete_body(start, wait=30))
        assert (r.status_code, r.json()) == (202, {"status": "pending", "stage": "browser"})
        assert gw.gateway.watchers.waiting(start["state"]) == 0


def test_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with running_gateway(host="::1") as gw:
        assert gw.url.startswith("http://[::1]:")
        with httpx.Client(base_url=gw.url) as client:
            assert client.post(START).json()["auth_url"].startswith(gw.url + "/oauth/authorize?")


def test_a_remembered_sign_in_skips_the_page_at_every_gateway_sharing_the_secret() -> None:
    """``remember_sign_in``: as an identity provider with a session, the built-in page signs the same
    browser in again without a click, at any gateway of this host with the same secret."""
    with (
        running_gateway(GatewaySettings(remember_sign_in=True)) as first,
        running_gateway(GatewaySettings(remember_sign_in=True, rack_name="other")) as second,
        running_gateway(GatewaySettings(remember_sign_in=True, secret="another-secret")) as foreign,
        running_gateway(GatewaySettings()) as forgetting,
        httpx.Client(trust_env=False, timeout=5) as browser,
    ):
        one = httpx.post(first.url + START, timeout=5).json()
        assert browser.get(one["auth_url"]).status_code == 200  # the page, the first time
        form = {"state": one["state"], "email": "Ops@Example.com", "action": "allow"}
        posted = browser.post(first.url + "/oauth/authorize", data=form)
        assert posted.status_code == 302
        assert browser.get(first.url + posted.headers["location"]).status_code == 200
        for gw in (first, second):  # signed in before: a redirect to the callback, no page
            start = httpx.post(gw.url + START, timeout=5).json()
            skipped = browser.get(start["auth_url"])
            assert skipped.status_code == 302
            assert skipped.headers["location"].startswith("/api/v1/auth/cli/callback?code=")
            assert browser.get(gw.url + skipped.headers["location"]).status_code == 200
            done = httpx.post(gw.url + COMPLETE, json=complete_body(start), timeout=5).json()
            assert done["email"] == "ops@example.com"
        for gw in (foreign, forgetting):  # another secret, or no memory: the page, as before
            start = httpx.post(gw.url + START, timeout=5).json()
            assert browser.get(start["auth_url"]).status_code == 200
        # A cookie naming another account without the gateway's signature signs nobody in.
        browser.cookies.set("rgw_signed_in", "YWRtaW5AZXhhbXBsZS5jb20.00", domain="127.0.0.1", path="/oauth/authorize")
        start = httpx.post(second.url + START, timeout=5).json()
        assert browser.get(start["auth_url"]).status_code == 200
