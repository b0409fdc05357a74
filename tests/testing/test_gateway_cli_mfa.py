"""`POST /api/v1/auth/cli/mfa` of the reference gateway in deployed mode, pinned line by line (issue 21).

The deployed handler, in its order: bad JSON `invalid_request`; empty state `state_required`; `totp`
without a code `code_required`; unknown state `session_expired`; already verified `200`; no
authorization code stored yet `session_incomplete` (no side effect); then, when the gateway has not
exchanged the code yet, this request exchanges it (`exchange_failed`); unknown user `401
user_not_authorized`; unknown method `invalid_method`; wrong code `invalid_code` (counts toward the
lock-out); right code `200 {"redirect":"/app/cli/auth/success"}`.  The state is the only credential:
no cookie.  The exchange side effect: a request between the gateway's callback and the browser's
`GET /auth/cli/mfa` takes the exchange away, and the browser's page fails with `session_incomplete`.

httpx plays both the browser (the built-in sign-in page, then each redirect by hand) and the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from tests.oidc_provider import Provider, sign_in

from .gateway_helpers import CLI_MFA, COMPLETE, START, FakeClock, complete_body, totp_at

MFA_USER = "mfa@example.com"
SUCCESS = {"redirect": "/app/cli/auth/success"}
CALLBACK = "/api/v1/auth/cli/callback"


@pytest.fixture
def deployed(clock: FakeClock) -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=False, rate_limit=None, clock=clock)) as gw:
        yield gw


@pytest.fixture
def browser(deployed: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployed.url, timeout=30, trust_env=False) as c:
        yield c


@pytest.fixture
def cli(deployed: RunningGateway) -> Iterator[httpx.Client]:
    """The CLI's client: never sent a page, so it holds no cookie."""
    with httpx.Client(base_url=deployed.url, timeout=30, trust_env=False) as c:
        yield c


def secret_of(gw: RunningGateway, email: str = MFA_USER) -> str:
    secret = gw.gateway.totp_secret(email)
    assert secret is not None
    return secret


def at_provider(browser: httpx.Client, email: str = MFA_USER) -> tuple[dict[str, Any], str]:
    """A login whose user signed in at the (built-in) provider: its start, and the callback URL the
    browser is about to load."""
    start: dict[str, Any] = browser.post(START).json()
    posted = browser.post("/oauth/authorize", data={"state": start["state"], "email": email, "action": "allow"})
    assert posted.status_code == 302
    return start, posted.headers["location"]


def through_callback(browser: httpx.Client, email: str = MFA_USER) -> tuple[dict[str, Any], str]:
    """The browser has loaded the gateway's callback (the code is stored, not exchanged): the start and
    the `GET /auth/cli/mfa` URL it is sent on to."""
    start, callback = at_provider(browser, email)
    answer = browser.get(callback)
    assert answer.status_code == 307
    assert answer.headers["location"] == f"/api/v1/auth/cli/mfa?state={start['state']}"
    return start, answer.headers["location"]


def at_mfa_page(browser: httpx.Client, email: str = MFA_USER) -> dict[str, Any]:
    """The browser's normal order: callback, `GET /auth/cli/mfa` (the exchange), the MFA page."""
    start, mfa_url = through_callback(browser, email)
    form = browser.get(mfa_url)
    assert (form.status_code, form.headers["location"]) == (302, f"/auth/mfa?state={start['state']}")
    page = browser.get(form.headers["location"])
    assert page.status_code == 200
    assert 'action="/auth/mfa"' in page.text
    return start


def submit(cli: httpx.Client, body: object) -> httpx.Response:
    return cli.post(CLI_MFA, content=json.dumps(body), headers={"Content-Type": "application/json"})


def answer_of(r: httpx.Response) -> tuple[int, Any]:
    return r.status_code, r.json()


def test_the_state_is_the_only_credential(
    deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client, clock: FakeClock
) -> None:
    start = at_mfa_page(browser)
    r = submit(cli, {"state": start["state"], "method": "totp", "code": totp_at(secret_of(deployed), clock)})
    assert "cookie" not in r.request.headers
    assert answer_of(r) == (200, SUCCESS)
    done = cli.post(COMPLETE, json=complete_body(start))
    assert done.status_code == 200, done.text
    assert (done.json()["email"], done.json()["mfa_verified"]) == (MFA_USER, True)


def test_the_answers_before_the_login_state(deployed: RunningGateway, cli: httpx.Client) -> None:
    bad_json = cli.post(CLI_MFA, content=b"{nope", headers={"Content-Type": "application/json"})
    assert answer_of(bad_json) == (400, {"error": "invalid_request"})
    for state in ("", "   "):
        assert answer_of(submit(cli, {"state": state, "method": "totp", "code": "123456"})) == (
            400,
            {"error": "state_required"},
        )
    # code_required is decided before the state is looked up
    assert answer_of(submit(cli, {"state": "unknown", "method": "totp"})) == (400, {"error": "code_required"})
    assert answer_of(submit(cli, {"state": "unknown", "method": "totp", "code": " "})) == (
        400,
        {"error": "code_required"},
    )
    assert answer_of(submit(cli, {"state": "unknown", "method": "totp", "code": "123456"})) == (
        400,
        {"error": "session_expired"},
    )
    # an unknown method is looked at only once the login is known
    assert answer_of(submit(cli, {"state": "unknown", "method": "sms", "code": "1"})) == (
        400,
        {"error": "session_expired"},
    )


def test_a_sign_in_not_finished_is_session_incomplete_with_no_side_effect(
    deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client, clock: FakeClock
) -> None:
    start: dict[str, Any] = browser.post(START).json()
    state = start["state"]
    code = totp_at(secret_of(deployed), clock)
    before = {"state": state, "method": "totp", "code": code}
    assert answer_of(submit(cli, before)) == (400, {"error": "session_incomplete"})  # not even at the provider
    posted = browser.post("/oauth/authorize", data={"state": state, "email": MFA_USER, "action": "allow"})
    # signed in at the provider, the callback not loaded yet: no code stored at the gateway
    for body in (before, {"state": state, "method": "sms", "code": "1"}):
        assert answer_of(submit(cli, body)) == (400, {"error": "session_incomplete"})
    assert deployed.gateway.mfa.attempts(MFA_USER) == 0  # nothing was checked, so nothing counted
    # ... and nothing was taken from the browser: its normal order still works, and so does that code
    mfa_url = browser.get(posted.headers["location"]).headers["location"]
    assert browser.get(mfa_url).headers["location"] == f"/auth/mfa?state={state}"
    assert answer_of(submit(cli, before)) == (200, SUCCESS)
    assert cli.post(COMPLETE, json=complete_body(start)).status_code == 200


def test_the_answers_after_the_browser_s_sign_in(
    deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client, clock: FakeClock
) -> None:
    start = at_mfa_page(browser)
    state = start["state"]
    assert answer_of(submit(cli, {"state": state, "method": "sms", "code": "123456"})) == (
        400,
        {"error": "invalid_method"},
    )
    assert answer_of(submit(cli, {"state": state, "method": "totp", "code": "000000"})) == (
        400,
        {"error": "invalid_code"},
    )
    assert cli.post(COMPLETE, json=complete_body(start)).json() == {"status": "pending"}
    right = totp_at(secret_of(deployed), clock)
    assert answer_of(submit(cli, {"state": state, "method": "totp", "code": right})) == (200, SUCCESS)
    # already verified: 200 whatever the code
    assert answer_of(submit(cli, {"state": state, "method": "totp", "code": "000000"})) == (200, SUCCESS)
    assert deployed.gateway.mfa.attempts(MFA_USER) == 2  # the wrong code and the right one
    done = cli.post(COMPLETE, json=complete_body(start))
    assert done.status_code == 200, done.text
    assert done.json()["mfa_verified"] is True
    # the login state is gone once redeemed
    assert answer_of(submit(cli, {"state": state, "method": "totp", "code": right})) == (
        400,
        {"error": "session_expired"},
    )


def test_a_backup_code_goes_as_totp(deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client) -> None:
    backup = deployed.gateway.generate_backup_codes(MFA_USER, 2)
    start = at_mfa_page(browser)
    assert answer_of(submit(cli, {"state": start["state"], "method": "totp", "code": backup[0]})) == (200, SUCCESS)
    assert cli.post(COMPLETE, json=complete_body(start)).json()["mfa_verified"] is True
    second = at_mfa_page(browser)
    assert answer_of(submit(cli, {"state": second["state"], "method": "totp", "code": backup[0]})) == (
        400,
        {"error": "invalid_code"},  # single use
    )


def test_an_unknown_user_is_401_before_the_method_is_looked_at(
    deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client
) -> None:
    # the browser exchanged the code: its page says the user is not authorized, the CLI waits on
    start, mfa_url = through_callback(browser, "stranger@example.com")
    page = browser.get(mfa_url)
    assert page.status_code == 403
    assert "User not authorized for this gateway." in page.text
    for method in ("totp", "sms"):
        r = submit(cli, {"state": start["state"], "method": method, "code": "123456"})
        assert answer_of(r) == (401, {"error": "user_not_authorized"})
    # the CLI's request exchanged the code itself
    other, _ = through_callback(browser, "stranger@example.com")
    r = submit(cli, {"state": other["state"], "method": "totp", "code": "123456"})
    assert answer_of(r) == (401, {"error": "user_not_authorized"})
    assert cli.post(COMPLETE, json=complete_body(other)).json() == {"status": "pending"}


@pytest.mark.parametrize("right", [False, True], ids=["wrong-code", "right-code"])
def test_a_request_after_the_callback_takes_the_exchange_from_the_browser(
    deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client, clock: FakeClock, right: bool
) -> None:
    start, mfa_url = through_callback(browser)
    code = totp_at(secret_of(deployed), clock) if right else "000000"
    # the request lands between the callback and the browser's next step, and exchanges the code:
    # it is answered as a signed-in login's would be (not session_incomplete)
    r = submit(cli, {"state": start["state"], "method": "totp", "code": code})
    assert answer_of(r) == ((200, SUCCESS) if right else (400, {"error": "invalid_code"}))
    assert deployed.gateway.mfa.attempts(MFA_USER) == 1
    # ... so the browser's own step finds the exchange taken: its MFA page fails
    page = browser.get(mfa_url)
    assert page.status_code == 400
    assert "session_incomplete" in page.text
    assert "finish in the terminal, where <code>rack-gateway login</code> is waiting." in page.text
    assert 'action="/auth/mfa"' not in page.text
    if right:  # the login itself is verified: the CLI gets its session
        done = cli.post(COMPLETE, json=complete_body(start))
        assert done.status_code == 200, done.text
        assert done.json()["mfa_verified"] is True
    else:  # only the terminal can finish it now
        assert cli.post(COMPLETE, json=complete_body(start)).json() == {"status": "pending"}
        r = submit(cli, {"state": start["state"], "method": "totp", "code": totp_at(secret_of(deployed), clock)})
        assert answer_of(r) == (200, SUCCESS)
        assert cli.post(COMPLETE, json=complete_body(start)).status_code == 200


def test_the_browser_s_normal_order_then_the_cli_s_code(
    deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client, clock: FakeClock
) -> None:
    start = at_mfa_page(browser)  # the browser exchanged the code and shows its MFA page
    r = submit(cli, {"state": start["state"], "method": "totp", "code": totp_at(secret_of(deployed), clock)})
    assert answer_of(r) == (200, SUCCESS)
    # the browser's page is not broken: reloaded, or its form posted, it says the login is done
    assert "Login complete" in browser.get(f"/auth/mfa?state={start['state']}").text
    posted = browser.post("/auth/mfa", data={"state": start["state"], "code": "000000"})
    assert (posted.status_code, "Login complete" in posted.text) == (200, True)
    assert cli.post(COMPLETE, json=complete_body(start)).status_code == 200


def test_the_browser_finishing_first(
    deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client, clock: FakeClock
) -> None:
    start = at_mfa_page(browser)
    posted = browser.post("/auth/mfa", data={"state": start["state"], "code": totp_at(secret_of(deployed), clock)})
    assert "Login complete" in posted.text
    # a code the user typed in the terminal too, late: already verified
    r = submit(cli, {"state": start["state"], "method": "totp", "code": totp_at(secret_of(deployed), clock, 30)})
    assert answer_of(r) == (200, SUCCESS)
    assert deployed.gateway.mfa.attempts(MFA_USER) == 1
    assert cli.post(COMPLETE, json=complete_body(start)).status_code == 200


def test_five_wrong_codes_lock_the_account(
    deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client, clock: FakeClock
) -> None:
    start = at_mfa_page(browser)
    wrong = {"state": start["state"], "method": "totp", "code": "000000"}
    for _ in range(4):
        assert answer_of(submit(cli, wrong)) == (400, {"error": "invalid_code"})
    assert not deployed.gateway.user_locked(MFA_USER)
    assert answer_of(submit(cli, wrong)) == (400, {"error": "invalid_code"})
    assert deployed.gateway.user_locked(MFA_USER)
    # locked: the right code is refused too, with the same answer
    right = {"state": start["state"], "method": "totp", "code": totp_at(secret_of(deployed), clock)}
    assert answer_of(submit(cli, right)) == (400, {"error": "invalid_code"})
    assert cli.post(COMPLETE, json=complete_body(start)).json() == {"status": "pending"}


def test_successes_count_toward_the_attempt_limit(
    deployed: RunningGateway, browser: httpx.Client, cli: httpx.Client, clock: FakeClock
) -> None:
    secret = secret_of(deployed)
    first = at_mfa_page(browser)
    for _ in range(3):
        assert answer_of(submit(cli, {"state": first["state"], "method": "totp", "code": "000000"})) == (
            400,
            {"error": "invalid_code"},
        )
    ok = submit(cli, {"state": first["state"], "method": "totp", "code": totp_at(secret, clock, -30)})
    assert answer_of(ok) == (200, SUCCESS)
    assert cli.post(COMPLETE, json=complete_body(first)).status_code == 200
    second = at_mfa_page(browser)
    assert answer_of(submit(cli, {"state": second["state"], "method": "totp", "code": "000000"})) == (
        400,
        {"error": "invalid_code"},
    )
    # the sixth attempt in 5 minutes, a right code: refused (4 failures, so no lock)
    right = {"state": second["state"], "method": "totp", "code": totp_at(secret, clock)}
    assert answer_of(submit(cli, right)) == (400, {"error": "invalid_code"})
    assert not deployed.gateway.user_locked(MFA_USER)
    clock.advance(301)
    right["code"] = totp_at(secret, clock)
    assert answer_of(submit(cli, right)) == (200, SUCCESS)


def test_oidc_the_cli_s_request_exchanges_the_provider_s_code(oidc_provider: Provider) -> None:
    with (
        running_gateway(
            GatewaySettings(
                oidc_issuer=oidc_provider.url, oidc_client_secret="gw-secret", extensions=False, rate_limit=None
            )
        ) as gw,
        httpx.Client(timeout=30, trust_env=False) as browser,
        httpx.Client(base_url=gw.url, timeout=30, trust_env=False) as cli,
    ):
        start = browser.post(gw.url + START).json()
        redirect = sign_in(browser, start["auth_url"], MFA_USER)
        callback = browser.get(redirect.headers["location"])
        assert callback.status_code == 307
        secret = secret_of(gw)
        r = submit(cli, {"state": start["state"], "method": "totp", "code": totp_at(secret, gw.settings.clock)})
        assert answer_of(r) == (200, SUCCESS)
        page = browser.get(gw.url + callback.headers["location"])
        assert page.status_code == 400
        assert "session_incomplete" in page.text
        done = cli.post(COMPLETE, json=complete_body(start))
        assert (done.status_code, done.json()["email"]) == (200, MFA_USER)
        # a code the provider refuses: this request's exchange fails, and so does the browser's page
        other = browser.post(gw.url + START).json()
        forged = browser.get(gw.url + CALLBACK, params={"state": other["state"], "code": "made-up"})
        assert forged.status_code == 307
        for _ in range(2):  # the code stays spent
            r = submit(cli, {"state": other["state"], "method": "totp", "code": "123456"})
            assert answer_of(r) == (400, {"error": "exchange_failed"})
        page = browser.get(gw.url + forged.headers["location"])
        assert (page.status_code, "session_incomplete" in page.text) == (400, True)
        assert cli.post(COMPLETE, json=complete_body(other)).json() == {"status": "pending"}
        # an identity the gateway refuses (a domain not allowed) is a failed exchange too
        third = browser.post(gw.url + START).json()
        callback = browser.get(sign_in(browser, third["auth_url"], "mallory@evil.com").headers["location"])
        assert callback.status_code == 307
        r = submit(cli, {"state": third["state"], "method": "totp", "code": "123456"})
        assert answer_of(r) == (400, {"error": "exchange_failed"})
