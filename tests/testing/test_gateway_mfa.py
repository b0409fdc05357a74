"""MFA in the reference gateway: TOTP, backup codes, lock-out, WebAuthn and step-up."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from rgw.testing import RunningGateway

from .gateway_helpers import CLI_MFA, COMPLETE, START, FakeClock, MiniKey, bearer, complete_body, login, totp_at

MFA_USER = "mfa@example.com"


def mfa_start(gw: RunningGateway, client: httpx.Client, email: str = MFA_USER) -> dict[str, str]:
    start: dict[str, str] = client.post(START).json()
    gw.gateway.complete_browser_login(start["state"], email)
    return start


def send_code(client: httpx.Client, state: str, code: str | None) -> httpx.Response:
    body: dict[str, object] = {"state": state, "method": "totp"}
    if code is not None:
        body["code"] = code
    return client.post(CLI_MFA, json=body)


def test_login_with_totp(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    secret = gw.gateway.totp_secret(MFA_USER)
    assert secret is not None
    start = mfa_start(gw, client)
    r = client.post(COMPLETE, json=complete_body(start))
    assert (r.status_code, r.json()) == (202, {"status": "pending", "stage": "mfa", "mfa_methods": ["totp"]})
    assert send_code(client, start["state"], "000000").json() == {"error": "invalid_code"}
    r = send_code(client, start["state"], totp_at(secret, clock))
    assert (r.status_code, r.json()) == (200, {"redirect": f"{gw.url}/auth/done"})
    # already verified: still fine
    assert send_code(client, start["state"], "123456").status_code == 200
    body = client.post(COMPLETE, json=complete_body(start)).json()
    assert (body["mfa_verified"], body["mfa_required"]) == (True, True)
    assert gw.gateway.login_completed_at(start["state"]) == clock()


def test_totp_code_is_single_use(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    secret = gw.gateway.totp_secret(MFA_USER)
    assert secret is not None
    code = totp_at(secret, clock)
    first, second = mfa_start(gw, client), mfa_start(gw, client)
    assert send_code(client, first["state"], code).status_code == 200
    assert send_code(client, second["state"], code).json() == {"error": "invalid_code"}
    # one step ahead is still inside the window
    assert send_code(client, second["state"], totp_at(secret, clock, 30)).status_code == 200


def test_unused_totp_code_gives_each_step_the_gateway_takes_once_then_says_none_is_left(
    gw: RunningGateway, client: httpx.Client, clock: FakeClock
) -> None:
    secret = gw.gateway.totp_secret(MFA_USER)
    assert secret is not None
    taken = []
    for _ in range(3):  # the next step, this one, the last: each accepted once
        code = gw.gateway.unused_totp_code(MFA_USER)
        assert send_code(client, mfa_start(gw, client)["state"], code).status_code == 200
        taken.append(code)
    assert taken == [totp_at(secret, clock, 30), totp_at(secret, clock), totp_at(secret, clock, -30)]
    with pytest.raises(LookupError):
        gw.gateway.unused_totp_code(MFA_USER)
    clock.advance(30)  # a new step: the next one is free again
    assert gw.gateway.unused_totp_code(MFA_USER) == totp_at(secret, clock, 30)


def test_totp_window(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    secret = gw.gateway.totp_secret(MFA_USER)
    assert secret is not None
    start = mfa_start(gw, client)
    assert send_code(client, start["state"], totp_at(secret, clock, -90)).json() == {"error": "invalid_code"}
    assert send_code(client, start["state"], totp_at(secret, clock, -30)).status_code == 200


def test_backup_codes_single_use(gw: RunningGateway, client: httpx.Client) -> None:
    codes = gw.gateway.generate_backup_codes(MFA_USER, count=3)
    assert len(set(codes)) == 3
    start = mfa_start(gw, client)
    assert client.post(COMPLETE, json=complete_body(start)).json()["mfa_methods"] == ["totp", "backup_code"]
    assert send_code(client, start["state"], codes[0].upper()).status_code == 200
    again = mfa_start(gw, client)
    assert send_code(client, again["state"], codes[0]).json() == {"error": "invalid_code"}
    assert send_code(client, again["state"], codes[1]).status_code == 200


def test_cli_mfa_errors(gw: RunningGateway, client: httpx.Client) -> None:
    start = mfa_start(gw, client)
    assert send_code(client, start["state"], None).json() == {"error": "code_required"}
    r = client.post(CLI_MFA, json={"state": start["state"], "method": "sms", "code": "1"})
    assert (r.status_code, r.json()) == (400, {"error": "invalid_method"})
    assert send_code(client, "unknown-state", "123456").json() == {"error": "session_expired"}
    browser_stage = client.post(START).json()
    assert send_code(client, browser_stage["state"], "123456").json() == {"error": "session_incomplete"}
    r = client.post(CLI_MFA, json={"state": start["state"], "method": "webauthn"})
    assert r.json() == {"error": "session_incomplete"}


def test_browser_mfa_page(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    secret = gw.gateway.totp_secret(MFA_USER)
    assert secret is not None
    start = client.post(START).json()
    client.get(start["auth_url"])
    posted = client.post("/oauth/authorize", data={"state": start["state"], "email": MFA_USER, "action": "allow"})
    r = client.get(posted.headers["location"])
    assert (r.status_code, r.headers["location"]) == (302, f"/auth/mfa?state={start['state']}")
    page = client.get(r.headers["location"])
    assert 'name="code"' in page.text
    bad = client.post("/auth/mfa", data={"state": start["state"], "code": "000000"})
    assert bad.status_code == 400
    assert "That code is not valid." in bad.text
    good = client.post("/auth/mfa", data={"state": start["state"], "code": totp_at(secret, clock)})
    assert good.status_code == 200
    assert "Login complete, return to your terminal" in good.text
    assert f"Signed in as <b>{MFA_USER}</b>" in good.text
    assert client.post(COMPLETE, json=complete_body(start)).json()["mfa_verified"] is True


def register_key(gw: RunningGateway, client: httpx.Client, token: str) -> MiniKey:
    key = MiniKey()
    started = client.post("/api/v1/auth/mfa/webauthn/register/start", headers=bearer(token)).json()
    assert started["options"]["publicKey"]["rp"]["id"] == "127.0.0.1"
    r = client.post(
        "/api/v1/auth/mfa/webauthn/register/finish",
        headers=bearer(token),
        json={
            "session_data": started["session_data"],
            "registration_response": key.register(started["options"], gw.url),
            "label": "test key",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "webauthn"
    return key


def test_webauthn_register_and_assert(gw: RunningGateway, client: httpx.Client) -> None:
    token = login(client, gw)["token"]
    key = register_key(gw, client, token)
    status = client.get("/api/v1/auth/mfa/status", headers=bearer(token)).json()
    assert status["enrolled"] is True
    assert [(m["type"], m["label"], m["cli_capable"]) for m in status["methods"]] == [("webauthn", "test key", True)]
    assert status["preferred_method"] == "webauthn"
    started = client.post("/api/v1/auth/mfa/webauthn/assertion/start", headers=bearer(token)).json()
    assertion = key.get_assertion(started["options"], gw.url)
    r = client.post(
        "/api/v1/auth/mfa/webauthn/assertion/verify",
        headers=bearer(token),
        json={"session_data": started["session_data"], "assertion_response": assertion},
    )
    assert r.status_code == 200
    assert r.json()["verified"] is True
    # the challenge is single use
    r = client.post(
        "/api/v1/auth/mfa/webauthn/assertion/verify",
        headers=bearer(token),
        json={"session_data": started["session_data"], "assertion_response": assertion},
    )
    assert r.json() == {"error": "session_expired"}
    # a key the gateway does not know fails
    started = client.post("/api/v1/auth/mfa/webauthn/assertion/start", headers=bearer(token)).json()
    stranger = MiniKey().get_assertion(started["options"], gw.url)
    r = client.post(
        "/api/v1/auth/mfa/webauthn/assertion/verify",
        headers=bearer(token),
        json={"session_data": started["session_data"], "assertion_response": stranger},
    )
    assert r.json() == {"error": "invalid_code"}


def test_webauthn_at_login(gw: RunningGateway, client: httpx.Client) -> None:
    key = register_key(gw, client, login(client, gw)["token"])
    start = mfa_start(gw, client, "developer@example.com")
    pending = client.post(COMPLETE, json=complete_body(start)).json()
    assert pending == {"status": "pending", "stage": "mfa", "mfa_methods": ["webauthn"]}
    started = client.post("/api/v1/auth/cli/mfa/webauthn/start", json={"state": start["state"]}).json()
    wrong_origin = key.get_assertion(started["options"], "http://evil.test:1")
    r = client.post(
        CLI_MFA,
        json={
            "state": start["state"],
            "method": "webauthn",
            "session_data": started["session_data"],
            "assertion_response": wrong_origin,
        },
    )
    assert r.json() == {"error": "invalid_code"}
    started = client.post("/api/v1/auth/cli/mfa/webauthn/start", json={"state": start["state"]}).json()
    r = client.post(
        CLI_MFA,
        json={
            "state": start["state"],
            "method": "webauthn",
            "session_data": started["session_data"],
            "assertion_response": key.get_assertion(started["options"], gw.url),
        },
    )
    assert r.status_code == 200, r.text
    assert client.post(COMPLETE, json=complete_body(start)).json()["mfa_verified"] is True


@pytest.fixture
def mfa_admin(gw: RunningGateway) -> str:
    gw.gateway.add_user("secadmin@example.com", "Sec Admin", roles=("admin",))
    return gw.gateway.enroll_totp("secadmin@example.com")


def test_step_up(gw: RunningGateway, client: httpx.Client, clock: FakeClock, mfa_admin: str) -> None:
    token = login(client, gw, "secadmin@example.com", totp_code=totp_at(mfa_admin, clock))["token"]
    # the login's own verification opens the window
    assert client.delete("/api/v1/rack-proxy/apps/web", headers=bearer(token)).status_code == 200
    clock.advance(601)
    r = client.delete("/api/v1/rack-proxy/apps/api", headers=bearer(token))
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("text/plain")
    assert (r.headers["X-MFA-Required"], r.headers["X-MFA-Level"]) == ("true", "step-up")
    bad = client.delete("/api/v1/rack-proxy/apps/api", headers={**bearer(token), "X-Mfa-Totp": "000000"})
    assert bad.status_code == 401
    r = client.delete("/api/v1/rack-proxy/apps/api", headers={**bearer(token), "X-Mfa-Totp": totp_at(mfa_admin, clock)})
    assert r.status_code == 200
    # window open again: no header needed
    assert client.delete("/api/v1/rack-proxy/apps/worker", headers=bearer(token)).status_code == 200
    status = client.get("/api/v1/auth/mfa/status", headers=bearer(token)).json()
    assert status["recent_step_up_expires_at"] is not None
    assert status["preferred_method"] == "totp"
    # reads never need step-up
    clock.advance(601)
    assert client.get("/api/v1/rack-proxy/apps", headers=bearer(token)).status_code == 200


def test_step_up_with_webauthn_header(
    gw: RunningGateway, client: httpx.Client, clock: FakeClock, mfa_admin: str
) -> None:
    token = login(client, gw, "secadmin@example.com", totp_code=totp_at(mfa_admin, clock))["token"]
    key = register_key(gw, client, token)
    clock.advance(601)
    started = client.post("/api/v1/auth/mfa/webauthn/assertion/start", headers=bearer(token)).json()
    payload = json.dumps(
        {"assertion_response": key.get_assertion(started["options"], gw.url), "session_data": started["session_data"]}
    )
    header = base64.b64encode(payload.encode()).decode()
    r = client.delete("/api/v1/rack-proxy/apps/worker", headers={**bearer(token), "X-MFA-WebAuthn": header})
    assert r.status_code == 200, r.text


def test_mfa_verify_route(gw: RunningGateway, client: httpx.Client, clock: FakeClock, mfa_admin: str) -> None:
    token = login(client, gw, "secadmin@example.com", totp_code=totp_at(mfa_admin, clock))["token"]
    clock.advance(30)
    r = client.post("/api/v1/auth/mfa/verify", headers=bearer(token), json={"code": totp_at(mfa_admin, clock)})
    assert r.status_code == 200
    assert r.json()["verified"] is True
    assert client.post("/api/v1/auth/mfa/verify", headers=bearer(token), json={"code": "999999"}).json() == {
        "error": "invalid_code"
    }
    assert client.post("/api/v1/auth/mfa/verify", headers=bearer(token), content=b"nope").status_code == 400


def test_totp_enroll_route(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    token = login(client, gw, "viewer@example.com")["token"]
    r = client.post("/api/v1/auth/mfa/totp/enroll", headers=bearer(token)).json()
    assert r["uri"].startswith("otpauth://totp/")
    assert len(r["backup_codes"]) == 10
    assert gw.gateway.totp_secret("viewer@example.com") == r["secret"]
    r = client.post("/api/v1/auth/mfa/verify", headers=bearer(token), json={"code": totp_at(r["secret"], clock)})
    assert r.status_code == 200
