"""Deployed mode (`extensions=False`): answers pinned to the Go server's, and MFA enrolment in both modes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway

from .gateway_helpers import CLI_MFA, COMPLETE, START, FakeClock, bearer, complete_body, login, mfa_session

ENROLL_JSON = {
    "error": "mfa_enrollment_required",
    "message": "Multi-factor authentication enrollment is required before you can access this resource.",
}
ENROLL_PROXY = {
    "error": "mfa_enrollment_required",
    "message": "You must set up multi-factor authentication before you can continue using the CLI. "
    "Please run rack-gateway login and finish MFA enrollment.",
}


@pytest.fixture
def deployed(clock: FakeClock) -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=False, rate_limit=None, clock=clock)) as gw:
        yield gw


@pytest.fixture
def dclient(deployed: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployed.url, timeout=30) as c:
        yield c


@pytest.fixture(params=[True, False], ids=["extensions", "deployed"])
def either(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=request.param, rate_limit=None, clock=clock)) as gw:
        yield gw


def test_admin_routes_are_404_like_unknown_routes(deployed: RunningGateway, dclient: httpx.Client) -> None:
    admin = login(dclient, deployed, "admin@example.com")
    dev = login(dclient, deployed)
    for path, body in (
        ("/api/v1/admin/sessions/revoke", {"email": "developer@example.com"}),
        ("/api/v1/admin/users/mfa", {"email": "developer@example.com", "required": True}),
    ):
        r = dclient.post(path, headers=bearer(admin["token"]), json=body)
        assert (r.status_code, r.content) == (404, b"")
    assert deployed.gateway.session_valid(dev["token"])
    # the Python API works in both modes
    deployed.gateway.revoke_session(dev["session_id"])
    assert not deployed.gateway.session_valid(dev["token"])
    deployed.gateway.set_mfa_required("viewer@example.com", True)
    user = deployed.gateway.user("viewer@example.com")
    assert user is not None
    assert user.mfa_required


def test_unknown_routes(either: RunningGateway) -> None:
    with httpx.Client(base_url=either.url) as client:
        missing = client.get("/api/v1/no/such/route")
        wrong_method = client.delete("/api/v1/health")
        webauthn_at_login = client.post("/api/v1/auth/cli/mfa/webauthn/start", json={"state": "x"})
        post_logout = client.post("/api/v1/auth/web/logout")
    if either.settings.extensions:
        assert (missing.status_code, missing.json()) == (404, {"error": "not found"})
        assert (wrong_method.status_code, wrong_method.json()) == (405, {"error": "method not allowed"})
        assert webauthn_at_login.json() == {"error": "session_expired"}
        assert post_logout.status_code == 302
    else:
        # gin's NoRoute: 404, no body, and no 405s
        for r in (missing, wrong_method, webauthn_at_login, post_logout):
            assert (r.status_code, r.content) == (404, b"")
            assert "content-type" not in r.headers


def test_mfa_enrollment_required(either: RunningGateway, clock: FakeClock) -> None:
    gw = either.gateway
    gw.add_user("late@example.com", roles=("viewer",))
    with httpx.Client(base_url=either.url) as client:
        token = login(client, either, "late@example.com")["token"]
        api_token = gw.create_api_token("late-bot", role="viewer", user_email="late@example.com")
        # MFA becomes required for a signed-in user whose session survives (put straight in the store)
        user = gw.user("late@example.com")
        assert user is not None
        gw.store.put_user(type(user)(user.email, user.name, user.roles, True), clock())
        r = client.get("/api/v1/api-tokens/permissions", headers=bearer(token))
        assert (r.status_code, r.headers["X-MFA-Required"], r.json()) == (403, "enrollment", ENROLL_JSON)
        r = client.get("/api/v1/rack-proxy/apps", headers=bearer(token))
        assert (r.status_code, r.json()) == (403, ENROLL_PROXY)
        assert "X-MFA-Required" not in r.headers
        # /info and /auth/mfa/* stay open, so the user can enrol
        assert client.get("/api/v1/info", headers=bearer(token)).json()["user"]["mfa_required"] is True
        assert client.get("/api/v1/auth/mfa/status", headers=bearer(token)).status_code == 200
        assert client.post("/api/v1/auth/mfa/totp/enroll", headers=bearer(token)).status_code == 200
        assert client.get("/api/v1/rack-proxy/apps", headers=bearer(token)).status_code == 200
        # API tokens are never asked to enrol
        assert client.get("/api/v1/rack-proxy/apps", headers=bearer(api_token)).status_code == 200


def test_the_browser_makes_two_login_requests(deployed: RunningGateway, dclient: httpx.Client) -> None:
    start = dclient.post(START).json()
    dclient.get(start["auth_url"])
    posted = dclient.post(
        "/oauth/authorize", data={"state": start["state"], "email": "developer@example.com", "action": "allow"}
    )
    deployed.gateway.reset_counts()
    callback = dclient.get(posted.headers["location"])
    assert (callback.status_code, callback.headers["location"]) == (307, f"/api/v1/auth/cli/mfa?state={start['state']}")
    assert dclient.post(COMPLETE, json=complete_body(start)).status_code == 202  # the code alone signs nobody in
    page = dclient.get(callback.headers["location"])
    assert "Login complete" in page.text
    assert deployed.gateway.request_count("/api/v1/auth/cli/callback") == 1
    assert deployed.gateway.request_count("/api/v1/auth/cli/mfa") == 1
    assert dclient.post(COMPLETE, json=complete_body(start)).status_code == 200
    # a cancelled consent or a bare callback: the Go server's text answer, the login stays pending
    other = dclient.post(START).json()
    for query in ({"state": other["state"], "error": "access_denied"}, {"code": "x"}, {}):
        r = dclient.get("/api/v1/auth/cli/callback", params=query)
        assert (r.status_code, r.text) == (400, "Missing code or state")
    assert dclient.post(COMPLETE, json=complete_body(other)).status_code == 202


def test_mfa_users_go_on_to_the_mfa_page(deployed: RunningGateway, dclient: httpx.Client) -> None:
    start = dclient.post(START).json()
    posted = dclient.post(
        "/oauth/authorize", data={"state": start["state"], "email": "mfa@example.com", "action": "allow"}
    )
    form = dclient.get(dclient.get(posted.headers["location"]).headers["location"])
    assert (form.status_code, form.headers["location"]) == (302, f"/auth/mfa?state={start['state']}")


def test_cli_mfa_is_parsed_like_the_go_server(deployed: RunningGateway, dclient: httpx.Client) -> None:
    start = dclient.post(START).json()
    deployed.gateway.complete_browser_login(start["state"], "mfa@example.com")

    def submit(body: object) -> dict[str, str]:
        answer: dict[str, str] = dclient.post(CLI_MFA, content=json.dumps(body)).json()
        return answer

    state = start["state"]
    assert dclient.post(CLI_MFA, content=b"{nope").json() == {"error": "invalid_request"}
    assert submit(
        {"state": state, "method": "webauthn", "session_data": "s", "assertion_response": {"id": "an object"}}
    ) == {"error": "invalid_request"}
    assert submit({"method": "totp", "code": "123456"}) == {"error": "state_required"}
    assert submit({"state": state}) == {"error": "code_required"}  # the method defaults to totp
    assert submit({"state": "unknown", "code": "123456"}) == {"error": "session_expired"}
    assert submit({"state": state, "method": "sms", "code": "1"}) == {"error": "invalid_method"}
    assert submit({"state": state, "code": "000000"}) == {"error": "invalid_code"}


def test_verify_answers(either: RunningGateway, clock: FakeClock) -> None:
    with httpx.Client(base_url=either.url) as client:
        token, app = mfa_session(client, either, "mfa@example.com", clock)
        body = client.post("/api/v1/auth/mfa/verify", headers=bearer(token), json={"code": app.code()}).json()
        go_fields = {"mfa_verified_at", "recent_step_up_expires_at", "trusted_device_cookie"}
        assert set(body) == (
            go_fields | {"verified", "step_up_expires_at"} if either.settings.extensions else go_fields
        )
        assert body["trusted_device_cookie"] is False
        r = client.post("/api/v1/auth/mfa/verify", headers=bearer(token), json={"code": ""})
        if not either.settings.extensions:
            assert (r.status_code, r.json()) == (400, {"error": "invalid request"})
            r = client.post(
                "/api/v1/auth/mfa/webauthn/assertion/verify",
                headers=bearer(token),
                json={"session_data": "s", "assertion_response": {"id": "an object"}},
            )
            assert (r.status_code, r.json()) == (400, {"error": "invalid request"})


def test_rack_proxy_mfa_like_the_go_proxy(deployed: RunningGateway, dclient: httpx.Client, clock: FakeClock) -> None:
    deployer = login(dclient, deployed, "deployer@example.com")["token"]  # not enrolled: MFA is still needed
    r = dclient.post("/api/v1/rack-proxy/apps", headers=bearer(deployer), json={"name": "shop"})
    assert (r.status_code, r.text) == (401, "Multi-factor authentication is required for this action\n")
    assert (r.headers["X-MFA-Required"], r.headers["X-MFA-Level"]) == ("true", "step_up")
    assert dclient.get("/api/v1/rack-proxy/apps", headers=bearer(deployer)).status_code == 200  # reads need none

    deployed.gateway.add_user("secadmin@example.com", "Sec Admin", roles=("admin",))
    admin, app = mfa_session(dclient, deployed, "secadmin@example.com", clock)
    assert dclient.delete("/api/v1/rack-proxy/apps/web", headers=bearer(admin)).status_code == 200  # login's window
    clock.advance(601)
    r = dclient.delete("/api/v1/rack-proxy/apps/api", headers=bearer(admin))
    assert (r.status_code, r.headers["X-MFA-Level"]) == (401, "always")
    r = dclient.delete("/api/v1/rack-proxy/apps/api", headers={**bearer(admin), "X-Mfa-Totp": "000000"})
    assert (r.status_code, r.text) == (401, "MFA verification failed\n")
    assert "X-MFA-Required" not in r.headers
    r = dclient.delete("/api/v1/rack-proxy/apps/api", headers=bearer(f"{admin}.totp.{app.code()}"))
    assert r.status_code == 200, r.text
    assert dclient.post("/api/v1/rack-proxy/apps", headers=bearer(admin), json={"name": "blog"}).status_code == 200
    # API tokens pass
    bot = deployed.gateway.create_api_token("bot", role="admin")
    assert dclient.post("/api/v1/rack-proxy/apps", headers=bearer(bot), json={"name": "bots"}).status_code == 200


def test_info_and_mfa_status_shapes(deployed: RunningGateway, dclient: httpx.Client, clock: FakeClock) -> None:
    dev = login(dclient, deployed)["token"]
    info = dclient.get("/api/v1/info", headers=bearer(dev)).json()
    assert list(info) == ["user", "rack", "integrations", "version"]  # no "session" object
    assert info["user"] == {
        "email": "developer@example.com",
        "name": "Developer",
        "roles": ["deployer"],
        "mfa_enrolled": False,
        "mfa_required": False,
        "has_trusted_device": False,
    }
    assert info["integrations"] == {"slack": False, "github": False, "circleci": False}
    bot = deployed.gateway.create_api_token("bot", role="viewer", user_email="viewer@example.com")
    as_token = dclient.get("/api/v1/info", headers=bearer(bot)).json()["user"]
    assert (as_token["name"], as_token["roles"]) == ("Viewer User", [])  # the owner's name, no roles

    token, _ = mfa_session(dclient, deployed, "mfa@example.com", clock)
    (code,) = deployed.gateway.generate_backup_codes("mfa@example.com", count=1)
    user = dclient.get("/api/v1/info", headers=bearer(token)).json()["user"]
    assert (user["mfa_enrolled"], user["mfa_required"], user["preferred_mfa_method"]) == (True, True, "totp")
    assert "recent_step_up_expires_at" in user
    status = dclient.get("/api/v1/auth/mfa/status", headers=bearer(token)).json()
    assert list(status) == [
        "enrolled",
        "required",
        "methods",
        "trusted_devices",
        "backup_codes",
        "recent_step_up_expires_at",
        "preferred_method",
        "webauthn_available",
    ]
    assert status["backup_codes"] == {"total": 1, "unused": 1}
    assert set(status["methods"][0]) == {
        "id",
        "type",
        "label",
        "cli_capable",
        "created_at",
        "confirmed_at",
        "last_used_at",
    }
    assert code
    plain = dclient.get("/api/v1/auth/mfa/status", headers=bearer(dev)).json()
    assert "recent_step_up_expires_at" not in plain
    assert "preferred_method" not in plain
    assert (plain["enrolled"], plain["methods"]) == (False, [])


def test_inline_webauthn_assertion_must_be_a_string(
    deployed: RunningGateway, dclient: httpx.Client, clock: FakeClock
) -> None:
    deployed.gateway.add_user("secadmin@example.com", "Sec Admin", roles=("admin",))
    admin, _ = mfa_session(dclient, deployed, "secadmin@example.com", clock)
    payload = json.dumps({"session_data": "s", "assertion_response": {"id": "an object"}}).encode()
    header = base64.b64encode(payload).decode()
    r = dclient.post(
        "/api/v1/api-tokens", headers={**bearer(admin), "X-MFA-WebAuthn": header}, json={"name": "ci", "role": "cicd"}
    )
    assert (r.status_code, r.json()) == (401, {"error": "mfa_verification_failed", "message": "Invalid MFA code"})
