"""API tokens with the deployed gateway's shapes and MFA rules, in both modes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from rgw.testing.gateway import rbac

from .gateway_helpers import FakeClock, bearer, login, mfa_session, totp_at

TOKENS = "/api/v1/api-tokens"
RECORD_KEYS = {
    "id",
    "public_id",
    "name",
    "user_id",
    "created_by_user_id",
    "created_by_email",
    "created_by_name",
    "permissions",
    "created_at",
    "expires_at",
    "last_used_at",
}
ADMIN = "admin@example.com"
MFA_REQUIRED = {
    "error": "mfa_required",
    "message": "Multi-factor authentication is required for this sensitive operation.",
}


@pytest.fixture(params=[True, False], ids=["extensions", "deployed"])
def gw(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=request.param, rate_limit=None, clock=clock)) as running:
        yield running


@pytest.fixture
def automation(gw: RunningGateway) -> dict[str, str]:
    """An admin API token's headers: API tokens never need MFA."""
    return bearer(gw.gateway.create_api_token("automation", role="admin"))


def test_permissions_catalogue(gw: RunningGateway, client: httpx.Client) -> None:
    admin = login(client, gw, ADMIN)["token"]
    body = client.get(f"{TOKENS}/permissions", headers=bearer(admin)).json()
    assert list(body) == ["permissions", "roles", "user_roles", "user_permissions", "default_permissions"]
    assert [r["name"] for r in body["roles"]] == ["viewer", "ops", "deployer", "cicd", "admin"]
    for role in body["roles"]:
        assert list(role) == ["name", "label", "description", "permissions"]
        assert role["permissions"] == sorted(role["permissions"])
    viewer = body["roles"][0]
    assert (viewer["label"], viewer["description"]) == (
        "Viewer",
        "Read-only access to apps, builds, processes, and rack status",
    )
    assert viewer["permissions"] == sorted(rbac.VIEWER)
    assert body["roles"][4]["permissions"] == ["*"]
    assert body["permissions"][-1] == "*"
    assert body["permissions"][:-1] == sorted(rbac.ALL_PERMISSIONS)
    assert (body["user_roles"], body["user_permissions"]) == (["admin"], ["*"])
    assert body["default_permissions"] == sorted(rbac.ROLE_PERMISSIONS["cicd"])
    ops = client.get(f"{TOKENS}/permissions", headers=bearer(login(client, gw, "ops@example.com")["token"])).json()
    assert (ops["user_roles"], ops["user_permissions"]) == (["ops"], sorted(rbac.VIEWER + rbac.OPS))


def test_record_shapes_and_lifecycle(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    session, app = mfa_session(client, gw, ADMIN, clock)
    listed = client.get(TOKENS, headers=bearer(session))
    assert (listed.status_code, listed.content) == (200, b"null")  # none yet: JSON null
    r = client.post(
        TOKENS,
        headers={**bearer(session), "X-Mfa-Totp": app.code()},
        json={"name": "lister", "permissions": ["convox:app:list"]},
    )
    assert r.status_code == 200, r.text
    created = r.json()
    assert list(created) == ["token", "id", "name", "permissions", "api_token"]
    assert created["token"].startswith("rgw_")
    assert (created["name"], created["permissions"]) == ("lister", ["convox:app:list"])
    record = created["api_token"]
    admin_id = gw.gateway.store.user_id(ADMIN)
    assert set(record) == RECORD_KEYS - {"created_by_email", "created_by_name"}  # no join on create
    assert (record["id"], record["user_id"], record["created_by_user_id"]) == (created["id"], admin_id, admin_id)
    assert str(uuid.UUID(record["public_id"])) == record["public_id"]
    assert (record["expires_at"], record["last_used_at"]) == (None, None)
    assert record["created_at"].endswith("Z")

    second = client.post(
        TOKENS,
        headers={**bearer(session), "X-Mfa-Totp": app.code()},
        json={"name": "viewer-bot", "role": "viewer", "user_email": "viewer@example.com"},
    ).json()
    assert second["api_token"]["user_id"] == gw.gateway.store.user_id("viewer@example.com")
    assert second["api_token"]["created_by_user_id"] == admin_id

    listed = client.get(TOKENS, headers=bearer(session)).json()
    assert [t["name"] for t in listed] == ["viewer-bot", "lister"]  # newest first
    assert all(set(t) == RECORD_KEYS for t in listed)
    assert (listed[1]["created_by_email"], listed[1]["created_by_name"]) == (ADMIN, "Admin User")
    public_id = record["public_id"]
    one = client.get(f"{TOKENS}/{public_id}", headers=bearer(session)).json()
    assert one == listed[1]
    assert client.get(f"{TOKENS}/{public_id.upper()}", headers=bearer(session)).json() == one  # a UUID column

    assert client.get("/api/v1/rack-proxy/apps", headers=bearer(created["token"])).status_code == 200
    assert client.get(f"{TOKENS}/{public_id}", headers=bearer(session)).json()["last_used_at"] is not None

    unknown = client.get(f"{TOKENS}/{uuid.uuid4()}", headers=bearer(session))
    assert (unknown.status_code, unknown.content) == (200, b"null")  # that is "not found"
    not_uuid = client.get(f"{TOKENS}/lister", headers=bearer(session))
    assert (not_uuid.status_code, not_uuid.json()) == (404, {"error": "token not found"})

    deleted = client.delete(f"{TOKENS}/{public_id}", headers={**bearer(session), "X-Mfa-Totp": app.code()})
    assert (deleted.status_code, deleted.content) == (204, b"")
    again = client.delete(f"{TOKENS}/{public_id}", headers={**bearer(session), "X-Mfa-Totp": app.code()})
    assert (again.status_code, again.json()) == (404, {"error": "token not found"})
    bad = client.delete(f"{TOKENS}/not-a-uuid", headers={**bearer(session), "X-Mfa-Totp": app.code()})
    assert (bad.status_code, bad.json()) == (500, {"error": "failed to load token"})
    r = client.get("/api/v1/rack-proxy/apps", headers=bearer(created["token"]))
    assert r.headers["X-Error-Reason"].startswith("invalid API token: ")


def test_sessions_need_mfa_with_the_request(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> None:
    session, app = mfa_session(client, gw, ADMIN, clock)
    body = {"name": "ci", "role": "cicd"}
    r = client.post(TOKENS, headers=bearer(session), json=body)
    assert (r.status_code, r.headers["X-MFA-Required"], r.json()) == (401, "always", MFA_REQUIRED)
    r = client.post(TOKENS, headers={**bearer(session), "X-Mfa-Totp": "000000"}, json=body)
    assert (r.status_code, r.json()) == (401, {"error": "mfa_verification_failed", "message": "Invalid MFA code"})
    assert "X-MFA-Required" not in r.headers
    r = client.post(TOKENS, headers=bearer(f"{session}.totp.{app.code()}"), json=body)  # inline in the Bearer
    assert r.status_code == 200, r.text
    # a good code opens no window: the next call needs one again, even right after /auth/mfa/verify
    assert client.post("/api/v1/auth/mfa/verify", headers=bearer(session), json={"code": app.code()}).status_code == 200
    r = client.post(TOKENS, headers=bearer(session), json={"name": "ci2", "role": "cicd"})
    assert (r.status_code, r.json()) == (401, MFA_REQUIRED)
    r = client.post(TOKENS, headers=bearer(f"{session}.sms.123456"), json={"name": "ci2", "role": "cicd"})
    assert (r.status_code, r.json()) == (
        400,
        {"error": "invalid_mfa_type", "message": "MFA type must be 'totp' or 'webauthn'"},
    )
    public_id = client.get(TOKENS, headers=bearer(session)).json()[0]["public_id"]
    r = client.delete(f"{TOKENS}/{public_id}", headers=bearer(session))
    assert (r.status_code, r.headers["X-MFA-Required"]) == (401, "always")
    assert client.delete(f"{TOKENS}/{public_id}", headers=bearer(f"{session}.totp.{app.code()}")).status_code == 204
    # reads need no MFA
    assert client.get(TOKENS, headers=bearer(session)).status_code == 200


def test_a_session_that_never_verified_mfa_cannot_pass(
    gw: RunningGateway, client: httpx.Client, clock: FakeClock
) -> None:
    session = login(client, gw, ADMIN)["token"]  # not enrolled at login: no MFA on this session
    secret = gw.gateway.enroll_totp(ADMIN)
    r = client.post(
        TOKENS, headers={**bearer(session), "X-Mfa-Totp": totp_at(secret, clock)}, json={"name": "ci", "role": "cicd"}
    )
    assert (r.status_code, r.headers["X-MFA-Required"], r.json()) == (401, "always", MFA_REQUIRED)
    # nor can a user without any MFA method
    gw.gateway.add_user("root@example.com", "Root", roles=("admin",))
    root = login(client, gw, "root@example.com")["token"]
    r = client.post(TOKENS, headers=bearer(root), json={"name": "x", "role": "cicd"})
    assert (r.status_code, r.json()) == (401, MFA_REQUIRED)


def test_api_tokens_pass_without_mfa(gw: RunningGateway, client: httpx.Client, automation: dict[str, str]) -> None:
    r = client.post(TOKENS, headers=automation, json={"name": "ci", "role": "cicd"})
    assert r.status_code == 200, r.text
    assert client.delete(f"{TOKENS}/{r.json()['api_token']['public_id']}", headers=automation).status_code == 204


def test_create_validation_and_role(gw: RunningGateway, client: httpx.Client, automation: dict[str, str]) -> None:
    def create(body: dict[str, object]) -> httpx.Response:
        return client.post(TOKENS, headers=automation, json=body)

    by_role = create({"name": "by-role", "role": " Viewer "}).json()
    assert by_role["permissions"] == sorted(rbac.VIEWER)  # the role's permissions, as the Go server expands it
    both = create({"name": "both", "role": "admin", "permissions": ["convox:app:read", "convox:app:list"]}).json()
    assert both["permissions"] == ["convox:app:read", "convox:app:list"]  # explicit permissions win, as given
    assert gw.gateway.sessions.token(both["api_token"]["public_id"]) is not None
    answers = {
        "wizard": create({"name": "w", "role": "wizard"}),
        "none": create({"name": "n"}),
        "empty": create({"name": "e", "permissions": []}),
        "no name": create({"permissions": ["convox:app:list"]}),
        "blank name": create({"name": "   ", "permissions": ["convox:app:list"]}),
        "taken": create({"name": "both", "permissions": ["convox:app:list"]}),
        "stranger": create({"name": "s", "permissions": ["convox:app:list"], "user_email": "who@example.com"}),
        "control": create({"name": "a\tb", "permissions": ["convox:app:list"]}),
    }
    got = {k: (r.status_code, r.json()["error"]) for k, r in answers.items()}
    assert got == {
        "wizard": (400, "invalid role: wizard (valid roles: viewer, ops, deployer, cicd, admin)"),
        "none": (400, "permissions required - specify --role or --permission"),
        "empty": (400, "permissions required - specify --role or --permission"),
        "no name": (
            400,
            "Key: 'CreateAPITokenRequest.Name' Error:Field validation for 'Name' failed on the 'required' tag",
        ),
        "blank name": (400, "token name is required"),
        "taken": (400, "token name already exists"),
        "stranger": (404, "user not found"),
        "control": (400, "token name must not contain control characters"),
    }


def test_rbac_comes_before_mfa(gw: RunningGateway, client: httpx.Client) -> None:
    deployer = login(client, gw, "deployer@example.com")["token"]
    r = client.post(TOKENS, headers=bearer(deployer), json={"name": "x", "role": "cicd"})
    assert (r.status_code, r.json()) == (403, {"error": "permission denied: api-token:create requires admin role"})
