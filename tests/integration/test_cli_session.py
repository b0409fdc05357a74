"""The whole path against the reference gateway: login, test-auth, apps, rack, racks, logout."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from rgw.models import parse_time
from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio


async def login(
    cli: Cli, gw: RunningGateway, rack: str = "dev", *extra: str, email: str = "developer@example.com"
) -> None:
    result = await cli("login", rack, gw.url, "--timeout", "60", *extra, browser=ScriptedBrowser(email=email))
    assert result.code == 0, result.err
    assert result.lines[-1] == f"Logged in as {email}"


async def who(cli: Cli, *args: str, env: dict[str, str] | None = None) -> tuple[str, str, str]:
    """``test-auth --json`` with ``args``: (rack, url, email) of the session the command used."""
    result = await cli("test-auth", "--json", *args, env=env)
    assert result.code == 0, result.err
    answer = json.loads(result.out)
    return answer["rack"], answer["url"], answer["email"]


@pytest.fixture
def other_gateway() -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings()) as gw:
        yield gw


async def two_racks(cli: Cli, one: RunningGateway, two: RunningGateway) -> None:
    """Rack ``one``: admin@example.com on ``one``; the current rack ``two``: developer@example.com on
    ``two``.  A command that uses the wrong rack shows the wrong user, role and URL."""
    await login(cli, one, "one", email="admin@example.com")
    await login(cli, two, "two")
    assert cli.config()["current"] == "two"


async def test_login_use_and_logout(cli: Cli, gateway: RunningGateway) -> None:
    result = await cli("login", "dev", gateway.url, "--timeout", "60")
    assert result.code == 0, result.err
    assert result.out == "Logged in as developer@example.com\n"
    assert "Opening browser for authentication..." in result.err
    assert f"If it does not open, visit: {gateway.url}/oauth/authorize?state=" in result.err
    assert "OAuth successful" in result.err

    config = cli.config()
    entry = config["gateways"]["dev"]
    assert config["current"] == "dev"
    assert entry["url"] == gateway.url
    assert entry["token"].startswith("rgw_sess_")
    assert entry["email"] == "developer@example.com"
    assert entry["channel"] == "cli"
    assert entry["device_id"] == config["machine_id"]
    assert isinstance(entry["session_id"], int)
    assert stat.S_IMODE((cli.config_dir / "config.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_dir.stat().st_mode) == 0o700
    token = entry["token"]
    assert token not in result.out + result.err

    auth = await cli("test-auth")
    assert auth.code == 0, auth.err
    assert auth.lines[0] == "Authenticated as developer@example.com"
    assert auth.lines[1] == "Role: deployer"
    assert auth.lines[2].startswith("Session expires: ")
    assert auth.lines[2].endswith(" UTC")

    apps = await cli("apps")
    assert apps.code == 0, apps.err
    assert apps.lines[0].split() == ["APP", "STATUS", "GEN", "RELEASE"]
    assert len(apps.lines) > 1

    rack = await cli("rack")
    assert rack.code == 0, rack.err
    assert "Rack:     dev" in rack.lines
    assert f"Gateway:  {gateway.url}" in rack.lines
    assert "User:     developer@example.com" in rack.lines
    assert any(line.startswith("Provider:") for line in rack.lines)
    assert any(line.startswith("Status:") for line in rack.lines)

    racks = await cli("racks")
    assert racks.lines[1].split()[:2] == ["*", "dev"]

    out = await cli("logout")
    assert out.code == 0, out.err
    assert out.out == "Logged out of dev\n"
    assert not gateway.gateway.session_valid(token)
    # The old token is rejected by the gateway itself, not just forgotten locally.
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{gateway.url}/api/v1/info", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    after = cli.config()["gateways"]["dev"]
    assert "token" not in after
    assert after["url"] == gateway.url

    again = await cli("test-auth")
    assert again.code == 3
    assert again.err.splitlines()[:2] == [
        "Error: not logged in to dev",
        f"Please run: rack-gateway login dev {gateway.url}",
    ]


async def test_login_again_by_name_and_switch(cli: Cli, gateway: RunningGateway, other_gateway: RunningGateway) -> None:
    await two_racks(cli, gateway, other_gateway)
    # Logging in again by name alone goes to the rack's stored URL and makes it current.
    relogin = await cli("login", "one", "--timeout", "60", browser=ScriptedBrowser(email="admin@example.com"))
    assert relogin.code == 0, relogin.err
    assert relogin.out == "Logged in as admin@example.com\n"
    assert cli.config()["current"] == "one"
    assert cli.config()["gateways"]["one"]["url"] == gateway.url
    switched = await cli("switch", "two")
    assert switched.out == "Switched to two\n"
    assert cli.config()["current"] == "two"
    unknown = await cli("switch", "nope")
    assert unknown.code == 10
    assert "unknown rack 'nope'" in unknown.err
    # The current rack is two; --rack and RACK_GATEWAY_RACK pick one for a single command.
    assert await who(cli) == ("two", other_gateway.url, "developer@example.com")
    assert await who(cli, "--rack", "one") == ("one", gateway.url, "admin@example.com")
    assert await who(cli, env={"RACK_GATEWAY_RACK": "one"}) == ("one", gateway.url, "admin@example.com")
    by_flag = await cli("--rack", "one", "test-auth")
    assert by_flag.code == 0, by_flag.err
    assert by_flag.lines[:2] == ["Authenticated as admin@example.com", "Role: admin"]
    by_env = await cli("test-auth", env={"RACK_GATEWAY_RACK": "one"})
    assert by_env.code == 0, by_env.err
    assert by_env.lines[:2] == ["Authenticated as admin@example.com", "Role: admin"]
    assert cli.config()["current"] == "two"  # choosing a rack for one command does not switch


@pytest.mark.parametrize(
    ("action", "explanation"),
    [
        ("revoke", "an administrator revoked your session"),
        ("mfa", "MFA enforcement changed for your account"),
        ("secret", "new secret"),
    ],
)
async def test_invalid_session_gives_the_seed_error(
    cli: Cli, gateway: RunningGateway, action: str, explanation: str
) -> None:
    await login(cli, gateway, "production")
    gw = gateway.gateway
    if action == "revoke":
        gw.revoke_user_sessions("developer@example.com")
    elif action == "mfa":
        gw.set_mfa_required("developer@example.com", True)
    else:
        gw.rotate_secret("a-new-secret")
    result = await cli("apps")
    assert result.code == 3
    lines = result.err.splitlines()
    assert lines[0] == "Error: session expired or invalid"
    assert lines[1] == f"Please run: rack-gateway login production {gateway.url}"
    assert explanation in result.err
    assert "Traceback" not in result.err


async def test_api_token_with_no_config_at_all(cli: Cli, gateway: RunningGateway) -> None:
    token = gateway.gateway.create_api_token("ci", role="viewer")
    env = {"RACK_GATEWAY_API_TOKEN": token, "RACK_GATEWAY_URL": gateway.url}
    apps = await cli("apps", env=env)
    assert apps.code == 0, apps.err
    assert apps.lines[0].split() == ["APP", "STATUS", "GEN", "RELEASE"]
    auth = await cli("test-auth", env=env)
    assert auth.code == 0, auth.err
    assert "Credential: API token" in auth.lines
    by_flag = await cli("--api-token", token, "apps", env={"RACK_GATEWAY_URL": gateway.url})
    assert by_flag.code == 0, by_flag.err
    assert not cli.config_dir.exists()
    assert token not in apps.out + apps.err + auth.out + auth.err


async def test_api_token_overrides_the_stored_session(cli: Cli, gateway: RunningGateway) -> None:
    await login(cli, gateway)
    token = gateway.gateway.create_api_token("ci", role="viewer")
    auth = await cli("test-auth", env={"RACK_GATEWAY_API_TOKEN": token})
    assert "Credential: API token" in auth.lines
    bad = await cli("--api-token", "rgw_token_wrong", "apps")
    assert bad.code == 3
    assert bad.err.splitlines()[0] == "Error: the gateway rejected the API token"
    assert "Check the API token" in bad.err
    assert "rgw_token_wrong" not in bad.err


async def test_rack_gateway_url_never_receives_another_racks_session(cli: Cli, gateway: RunningGateway) -> None:
    await login(cli, gateway)
    # With a stored rack selected, RACK_GATEWAY_URL does not redirect its session elsewhere.
    result = await cli("test-auth", env={"RACK_GATEWAY_URL": "http://127.0.0.1:9"})
    assert result.code == 0, result.err
    # An unknown rack with RACK_GATEWAY_URL and no token: not logged in, nothing sent.
    other = await cli("--rack", "elsewhere", "apps", env={"RACK_GATEWAY_URL": "http://127.0.0.1:9"})
    assert other.code == 3
    assert "not logged in to elsewhere" in other.err


async def test_permission_denied_shows_the_gateways_text(cli: Cli, gateway: RunningGateway) -> None:
    viewer = ScriptedBrowser(email="viewer@example.com")
    result = await cli("login", "dev", gateway.url, browser=viewer)
    assert result.code == 0, result.err
    denied = await cli("api-token", "create", "--name", "x", "--permission", "convox:app:list")
    assert denied.code == 4
    assert denied.err.splitlines()[0].startswith("Error: permission denied: ")
    assert "requires admin role" in denied.err


async def test_api_token_commands(cli: Cli, gateway: RunningGateway) -> None:
    import pyotp

    # Creating and deleting API tokens always needs MFA, from a session that verified MFA at login.
    secret = gateway.gateway.enroll_totp("admin@example.com")

    def code(step: int) -> str:  # each 30 s step is accepted once: one step for each use below
        return pyotp.TOTP(secret).at(int(time.time()) + 30 * step)

    admin = ScriptedBrowser(email="admin@example.com")
    login = await cli("login", "dev", gateway.url, "--mfa-code", code(-1), browser=admin)
    assert login.code == 0, login.err
    created = await cli(
        "api-token", "create", "--name", "deploy-bot", "--role", "viewer", "--output", "token", "--mfa-code", code(0)
    )
    assert created.code == 0, created.err
    token = created.out.strip()
    assert token.startswith("rgw_")
    listing = await cli("api-token", "list", "--json")
    tokens: list[dict[str, Any]] = json.loads(listing.out)
    mine = next(t for t in tokens if t["name"] == "deploy-bot")
    public_id = mine.get("public_id") or mine["id"]
    got = await cli("api-token", "get", str(public_id))
    assert got.code == 0, got.err
    assert "deploy-bot" in got.out
    apps = await cli("--api-token", token, "apps")
    assert apps.code == 0, apps.err
    deleted = await cli("api-token", "delete", str(public_id), "--mfa-code", code(1))
    assert deleted.code == 0, deleted.err
    rejected = await cli("--api-token", token, "apps")
    assert rejected.code == 3


async def test_sliding_expiry_is_stored(cli: Cli) -> None:
    now = [time.time()]
    with running_gateway(GatewaySettings(clock=lambda: now[0])) as gw:
        await login(cli, gw)
        before = cli.config()["gateways"]["dev"]["expires_at"]
        now[0] += 3 * 86400  # three days later the session is used again: its expiry slides
        assert (await cli("test-auth")).code == 0
        after = cli.config()["gateways"]["dev"]["expires_at"]
    assert parse_time(after) - parse_time(before) == timedelta(days=3)  # type: ignore[operator]


def config_writes(cli: Cli) -> tuple[int, int]:
    """What changes when config.json is written (a new file replaces it): its inode and mtime."""
    info = (cli.config_dir / "config.json").stat()
    return info.st_ino, info.st_mtime_ns


async def test_an_expiry_that_slid_less_than_an_hour_is_not_written(cli: Cli) -> None:
    now = [time.time()]
    with running_gateway(GatewaySettings(clock=lambda: now[0])) as gw:
        await login(cli, gw)
        stored = cli.config()["gateways"]["dev"]["expires_at"]
        writes = 0
        for _ in range(3):  # a minute apart: the gateway slides the expiry by a minute each time
            now[0] += 60
            before = config_writes(cli)
            assert (await cli("test-auth")).code == 0
            writes += config_writes(cli) != before
        assert writes == 0
        assert cli.config()["gateways"]["dev"]["expires_at"] == stored
        now[0] += 3600 + 60 - 3 * 60  # now more than an hour after the stored value: stored again
        before = config_writes(cli)
        assert (await cli("test-auth")).code == 0
        assert config_writes(cli) != before
        after = cli.config()["gateways"]["dev"]["expires_at"]
    assert parse_time(after) - parse_time(stored) == timedelta(seconds=3660)  # type: ignore[operator]


async def test_a_first_expiry_is_written(cli: Cli) -> None:
    now = [time.time()]
    with running_gateway(GatewaySettings(clock=lambda: now[0])) as gw:
        await login(cli, gw)
        path = cli.config_dir / "config.json"
        data = cli.config()
        del data["gateways"]["dev"]["expires_at"]
        path.write_text(json.dumps(data))
        now[0] += 60
        assert (await cli("test-auth")).code == 0
        assert parse_time(cli.config()["gateways"]["dev"].get("expires_at")) == parse_time(
            datetime.fromtimestamp(now[0] + gw.settings.session_ttl, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )


async def test_seed_error_for_a_domain_that_is_not_allowed(cli: Cli, gateway: RunningGateway) -> None:
    result = await cli("login", "production", gateway.url, browser=ScriptedBrowser(email="eve@evil.example"))
    assert result.code == 7
    assert result.err.splitlines()[-2:] == [
        "Error: email domain not allowed",
        "Signed in as eve@evil.example. Your Google Workspace domain isn't configured in the gateway. "
        "Contact your administrator to add your domain to GOOGLE_ALLOWED_DOMAIN.",
    ]
    assert not (cli.config_dir / "config.json").exists()


async def test_credential_options_after_the_command_as_in_the_seed(
    cli: Cli, gateway: RunningGateway, other_gateway: RunningGateway
) -> None:
    token = gateway.gateway.create_api_token("ci", role="viewer")
    env = {"RACK_GATEWAY_URL": gateway.url}
    apps = await cli("apps", "--api-token", token, env=env)
    assert apps.code == 0, apps.err
    assert apps.lines[0].split() == ["APP", "STATUS", "GEN", "RELEASE"]
    await two_racks(cli, gateway, other_gateway)
    auth = await cli("test-auth", "-r", "one")
    assert auth.code == 0, auth.err
    assert auth.lines[:2] == ["Authenticated as admin@example.com", "Role: admin"]
    assert await who(cli, "-r", "one") == ("one", gateway.url, "admin@example.com")
    assert await who(cli) == ("two", other_gateway.url, "developer@example.com")
    tokens = await cli("api-token", "list", "--api-token", "rgw_token_bogus")
    assert tokens.code == 3


async def test_admin_commands_on_the_reference_gateway(cli: Cli, gateway: RunningGateway, tmp_path: Path) -> None:
    await login(cli, gateway, "dev")
    admin = Cli(config_dir=tmp_path / "admin", browser=ScriptedBrowser(email="admin@example.com"))
    assert (await admin("login", "dev", gateway.url)).code == 0
    revoked = await admin("admin", "revoke-sessions", "--email", "developer@example.com")
    assert revoked.code == 0, revoked.err
    assert revoked.out == "Revoked 1 session\n"
    result = await cli("apps")
    assert result.code == 3
    assert "an administrator revoked your session" in result.err
    denied = await cli("admin", "require-mfa", "admin@example.com")
    assert denied.code == 3  # the developer's session is gone
    await login(cli, gateway, "dev")
    denied = await cli("admin", "require-mfa", "admin@example.com")
    assert denied.code == 4
    assert "requires admin role" in denied.err
    usage = await admin("admin", "revoke-sessions")
    assert usage.code == 2


async def test_inactivity_expiry_is_named(cli: Cli) -> None:
    now = [time.time()]
    with running_gateway(GatewaySettings(clock=lambda: now[0])) as gw:
        await login(cli, gw, "production")
        now[0] += gw.settings.inactivity_timeout + 60
        result = await cli("test-auth")
    assert result.code == 3
    lines = result.err.splitlines()
    assert lines[:2] == ["Error: session expired or invalid", f"Please run: rack-gateway login production {gw.url}"]
    assert "(the session expired after a period of inactivity)" in lines
