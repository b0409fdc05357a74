"""Sessions, API tokens, RBAC and the rack proxy of the reference gateway."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway

from .gateway_helpers import FakeClock, bearer, login

DAY = 86400.0


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def auth_failure(client: httpx.Client, token: str) -> tuple[dict[str, str], httpx.Response]:
    """The JSON 401 of /info and the text 401 of the rack proxy for `token`."""
    info = client.get("/api/v1/info", headers=bearer(token))
    assert info.status_code == 401
    proxy = client.get("/api/v1/rack-proxy/apps", headers=bearer(token))
    assert proxy.status_code == 401
    assert proxy.headers["content-type"].startswith("text/plain")
    assert proxy.text == info.json()["error"] + "\n"
    assert "authentication failed: " + proxy.headers["X-Error-Reason"] == info.json()["error"]
    return info.json(), proxy


def test_info(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    body = login(client, gw)
    r = client.get("/api/v1/info", headers=bearer(body["token"]))
    info = r.json()
    assert info["user"] == {
        "email": "developer@example.com",
        "name": "Developer",
        "roles": ["deployer"],
        "mfa_enrolled": False,
        "mfa_required": False,
    }
    assert info["rack"]["name"] == "dev"
    assert info["session"] == {"expires_at": rfc3339(clock() + 90 * DAY), "id": body["session_id"]}
    assert r.headers["X-Session-Expires-At"] == rfc3339(clock() + 90 * DAY)
    assert gw.gateway.session_valid(body["token"])
    assert not gw.gateway.session_valid("rgw_sess_nonsense")


def test_sliding_expiry(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    token = login(client, gw)["token"]
    for _ in range(4):  # 100 days in all, more than the 90-day TTL, each step under 30 days idle
        clock.advance(25 * DAY)
        r = client.get("/api/v1/rack-proxy/system", headers=bearer(token))
        assert r.status_code == 200
        assert r.headers["X-Session-Expires-At"] == rfc3339(clock() + 90 * DAY)
    assert r.json()["name"] == "dev"


def test_inactivity_expiry(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    token = login(client, gw)["token"]
    clock.advance(30 * DAY + 1)
    body, proxy = auth_failure(client, token)
    assert body["error"] == "authentication failed: session expired"
    assert "inactivity" in body["message"]
    assert proxy.headers["X-Error-Reason"] == "session expired"


def test_ttl_expiry() -> None:
    clock = FakeClock()
    settings = GatewaySettings(clock=clock, session_ttl=100.0, inactivity_timeout=1000.0)
    with running_gateway(settings) as gw, httpx.Client(base_url=gw.url) as client:
        token = login(client, gw)["token"]
        clock.advance(101)
        body, _ = auth_failure(client, token)
        assert body == {
            "error": "authentication failed: session expired",
            "message": "Your session has expired. Please log in again.",
        }


def test_no_expiry_header_without_extensions() -> None:
    with running_gateway(GatewaySettings(extensions=False)) as gw, httpx.Client(base_url=gw.url) as client:
        token = login(client, gw)["token"]
        r = client.get("/api/v1/info", headers=bearer(token))
        assert r.status_code == 200
        assert "X-Session-Expires-At" not in r.headers


def test_revoked_by_admin(gw: RunningGateway, client: httpx.Client) -> None:
    dev = login(client, gw)
    admin = login(client, gw, "admin@example.com")["token"]
    r = client.post("/api/v1/admin/sessions/revoke", headers=bearer(admin), json={"email": "developer@example.com"})
    assert r.json() == {"revoked": 1}
    body, proxy = auth_failure(client, dev["token"])
    assert body["error"] == "authentication failed: session revoked"
    assert "administrator" in body["message"]
    assert proxy.headers["X-Error-Reason"] == "session revoked"
    # by id, and via the Python API
    again = login(client, gw)
    r = client.post("/api/v1/admin/sessions/revoke", headers=bearer(admin), json={"session_id": again["session_id"]})
    assert r.json() == {"revoked": 1}
    third = login(client, gw)
    gw.gateway.revoke_session(third["session_id"])
    assert not gw.gateway.session_valid(third["token"])
    fourth = login(client, gw)
    gw.gateway.revoke_user_sessions("developer@example.com")
    assert not gw.gateway.session_valid(fourth["token"])
    # only admins may revoke
    r = client.post("/api/v1/admin/sessions/revoke", headers=bearer(login(client, gw)["token"]), json={"email": "x"})
    assert (r.status_code, r.json()) == (403, {"error": "permission denied: admin:sessions:revoke requires admin role"})


def test_mfa_change_revokes(gw: RunningGateway, client: httpx.Client) -> None:
    token = login(client, gw)["token"]
    gw.gateway.set_mfa_required("developer@example.com", True)
    body, _ = auth_failure(client, token)
    assert body["error"] == "authentication failed: session revoked"
    assert "MFA enforcement" in body["message"]
    admin = login(client, gw, "admin@example.com")["token"]
    token = login(client, gw, "viewer@example.com")["token"]
    r = client.post(
        "/api/v1/admin/users/mfa", headers=bearer(admin), json={"email": "viewer@example.com", "required": True}
    )
    assert r.json() == {"email": "viewer@example.com", "mfa_required": True}
    assert "MFA enforcement" in auth_failure(client, token)[0]["message"]
    r = client.post(
        "/api/v1/admin/users/mfa", headers=bearer(admin), json={"email": "who@example.com", "required": True}
    )
    assert (r.status_code, r.json()) == (404, {"error": "user not found"})


def test_secret_rotation(gw: RunningGateway, client: httpx.Client) -> None:
    token = login(client, gw)["token"]
    api_token = gw.gateway.create_api_token("ci", role="cicd")
    gw.gateway.rotate_secret("a-new-secret")
    body, proxy = auth_failure(client, token)
    assert body["error"] == "authentication failed: session not found"
    assert "secret changed" in body["message"]
    assert proxy.headers["X-Error-Reason"] == "session not found"
    unknown, _ = auth_failure(client, "rgw_sess_never-issued")
    assert unknown["error"] == "authentication failed: session not found"
    assert "secret" not in unknown["message"]
    assert client.get("/api/v1/rack-proxy/apps", headers=bearer(api_token)).status_code == 200
    assert client.get("/api/v1/info", headers=bearer(login(client, gw)["token"])).status_code == 200


def test_logout(gw: RunningGateway, client: httpx.Client) -> None:
    token = login(client, gw)["token"]
    r = client.get("/api/v1/auth/web/logout", headers=bearer(token))
    assert (r.status_code, r.headers["location"]) == (302, "/")
    assert auth_failure(client, token)[0]["error"] == "authentication failed: session revoked"


def test_missing_credentials_and_cookie(gw: RunningGateway, client: httpx.Client) -> None:
    r = client.get("/api/v1/info")
    assert r.status_code == 401
    assert r.json()["error"].startswith("authentication failed")
    token = login(client, gw)["token"]
    r = client.get("/api/v1/rack-proxy/apps", headers={**bearer(token), "Cookie": f"session_token={token}"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["X-Error-Reason"]
    assert client.get("/api/v1/rack-proxy/apps", headers=bearer(token)).status_code == 200


def test_rbac_denials(gw: RunningGateway, client: httpx.Client) -> None:
    viewer = login(client, gw, "viewer@example.com")["token"]
    deployer = login(client, gw, "deployer@example.com")["token"]
    r = client.delete("/api/v1/rack-proxy/apps/web", headers=bearer(deployer))
    assert (r.status_code, r.text) == (403, "permission denied: convox:app:delete requires admin role\n")
    r = client.post("/api/v1/rack-proxy/apps", headers=bearer(viewer), data={"name": "new"})
    assert (r.status_code, r.text) == (403, "permission denied: convox:app:create requires deployer role\n")
    r = client.post("/api/v1/api-tokens", headers=bearer(deployer), json={"name": "x", "role": "cicd"})
    assert (r.status_code, r.json()) == (403, {"error": "permission denied: api-token:create requires admin role"})
    assert client.get("/api/v1/rack-proxy/apps/web", headers=bearer(viewer)).json()["name"] == "web"


def test_rack_proxy_apps(gw: RunningGateway, client: httpx.Client) -> None:
    deployer = login(client, gw, "deployer@example.com")["token"]
    admin = login(client, gw, "admin@example.com")["token"]
    apps = client.get("/api/v1/rack-proxy/apps", headers=bearer(deployer)).json()
    assert [a["name"] for a in apps] == ["api", "web", "worker"]
    assert set(apps[0]) == {"name", "generation", "release", "status"}
    assert client.post("/api/v1/rack-proxy/apps", headers=bearer(deployer), data={"name": "shop"}).status_code == 200
    assert client.post("/api/v1/rack-proxy/apps", headers=bearer(deployer), json={"name": "blog"}).status_code == 200
    assert client.post("/api/v1/rack-proxy/apps", headers=bearer(deployer), json={"name": "shop"}).status_code == 409
    assert client.post("/api/v1/rack-proxy/apps", headers=bearer(deployer), content=b"{").status_code == 400
    assert client.delete("/api/v1/rack-proxy/apps/shop", headers=bearer(admin)).status_code == 200
    r = client.get("/api/v1/rack-proxy/apps/shop", headers=bearer(deployer))
    assert (r.status_code, r.text) == (404, "app not found: shop\n")
    system = client.get("/api/v1/rack-proxy/system", headers=bearer(deployer)).json()
    assert {"name", "provider", "region", "status", "version", "count", "type"} <= set(system)
    assert client.get("/api/v1/rack-proxy/no/such", headers=bearer(deployer)).status_code == 404


def test_api_token_roles(gw: RunningGateway, client: httpx.Client) -> None:
    cicd = gw.gateway.create_api_token("deploys", role="cicd")
    r = client.post("/api/v1/rack-proxy/apps", headers=bearer(cicd), json={"name": "fromci"})
    assert r.status_code == 200
    r = client.delete("/api/v1/rack-proxy/apps/fromci", headers=bearer(cicd))
    assert r.text == "permission denied: convox:app:delete requires admin role\n"
    admin_token = gw.gateway.create_api_token("root", role="admin")
    assert client.delete("/api/v1/rack-proxy/apps/fromci", headers=bearer(admin_token)).status_code == 200
    with pytest.raises(ValueError, match="unknown role"):
        gw.gateway.create_api_token("bad", role="wizard")
