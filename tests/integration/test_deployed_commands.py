"""What a new user hits against a deployed gateway: every command around the login, pinned.

The reference gateway in deployed mode (no extensions, the deployed limits and shapes) stands in
for the Go server.  Each test is one of the defects a new user met, with its exact output and exit
code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pyotp
import pytest

from rgw.cli import cli as root_command
from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

ADMIN = "admin@example.com"
GLOBALS = ("--rack", "--config", "--api-token", "--mfa-method", "--mfa-code", "--verbose", "-v")


def code(secret: str, step: int = 0) -> str:
    """The TOTP code ``step`` steps from now (the gateway takes each of -1, 0, +1 once)."""
    return pyotp.TOTP(secret).at(int(time.time()) + 30 * step)


@pytest.fixture
def deployed() -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=False)) as gw:
        yield gw


async def admin_with_mfa(cli: Cli, gw: RunningGateway) -> str:
    """admin@ with TOTP enrolled, logged in with MFA done in the browser (a deployed gateway's way)."""
    secret = gw.gateway.enroll_totp(ADMIN)
    browser = ScriptedBrowser(email=ADMIN, totp_secret=secret)
    result = await cli("login", "production", gw.url, "--timeout", "60", browser=browser)
    assert result.code == 0, result.err
    return secret


# -- 1. global options anywhere ---------------------------------------------------------------


def commands(group: object) -> Iterator[tuple[str, object]]:
    import asyncclick as click

    assert isinstance(group, click.Group)
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # lazily loaded commands: click's lookup, not .commands
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield name, command
        if isinstance(command, click.Group):
            for sub, inner in commands(command):
                yield f"{name} {sub}", inner


def test_every_command_takes_the_global_options() -> None:
    found = dict(commands(root_command))
    assert {"login", "logout", "test-auth", "apps", "racks", "api-token create", "version"} <= set(found)
    for name, command in found.items():
        opts = {opt for param in command.params for opt in getattr(param, "opts", [])}  # type: ignore[attr-defined]
        missing = [o for o in GLOBALS if o not in opts]
        assert not missing, f"{name} lacks {missing}"


async def test_global_options_after_the_command(cli: Cli, deployed: RunningGateway, tmp_path: object) -> None:
    await admin_with_mfa(cli, deployed)
    fresh = deployed.gateway.unused_totp_code(ADMIN)
    created = await cli(
        "api-token", "create", "--name", "ci", "--role", "viewer", "--output", "json", "--mfa-code", fresh
    )
    assert created.code == 0, created.err
    assert json.loads(created.out)["name"] == "ci"
    other = cli.config_dir.parent / "elsewhere"
    moved = await cli("racks", "--config", str(other))
    assert moved.code == 0
    assert moved.err == "No racks configured. Please run: rack-gateway login <rack> <gateway-url>\n"
    by_rack = await cli("test-auth", "-r", "production", "--json")
    assert json.loads(by_rack.out)["rack"] == "production"
    method = await cli("login", "production", "--mfa-method", "backup_code", "--no-browser", "--timeout", "1")
    assert "No such option" not in method.err
    assert method.code == 8  # nobody signed in within the second: parsed, ran, timed out


# -- 2. and 3. API tokens in the deployed shapes ------------------------------------------------


async def test_api_tokens_in_the_deployed_shapes(cli: Cli, deployed: RunningGateway) -> None:
    await admin_with_mfa(cli, deployed)
    fresh = deployed.gateway.unused_totp_code(ADMIN)
    created = await cli("api-token", "create", "--name", "deploy-bot", "--role", "viewer", "--mfa-code", fresh)
    assert created.code == 0, created.err
    lines = created.out.splitlines()
    assert lines[0].startswith("Created API token deploy-bot (")
    assert lines[1].startswith("Permissions: ")
    listing = await cli("api-token", "list")
    assert listing.code == 0, listing.err
    header, *rows = listing.lines
    assert header.split() == ["NAME", "USER", "PERMISSIONS", "LAST", "USED"]
    assert len(rows) == 2  # the token, and its ID on a line of its own
    assert "deploy-bot" in rows[0]
    assert "role viewer" in rows[0]  # not the 300-character list
    assert rows[1].startswith("  ID ")
    assert max(len(line) for line in listing.lines) <= 80
    full = json.loads((await cli("api-token", "list", "--json")).out)
    assert len(full[0]["permissions"]) > 3  # every permission is in --json
    unknown = await cli("api-token", "get", str(uuid.uuid4()))
    assert unknown.code == 12
    assert unknown.err.startswith("Error: no API token '")
    bogus = await cli("api-token", "get", "not-a-uuid")
    assert bogus.code == 12
    gone = await cli("api-token", "delete", str(uuid.uuid4()), "--mfa-code", deployed.gateway.unused_totp_code(ADMIN))
    assert gone.code == 12


async def test_no_api_tokens_is_said(cli: Cli, deployed: RunningGateway) -> None:
    token = deployed.gateway.create_api_token("bootstrap", role="admin")
    env = {"RACK_GATEWAY_API_TOKEN": token, "RACK_GATEWAY_URL": deployed.url}
    result = await cli("api-token", "list", env=env)
    assert result.code == 0, result.err
    assert "bootstrap" in result.out


# -- 4. and 5. MFA failures are MFA failures ------------------------------------------------------


async def test_a_wrong_step_up_code_is_an_mfa_failure_and_asked_again(cli: Cli, deployed: RunningGateway) -> None:
    secret = await admin_with_mfa(cli, deployed)
    wrong = "000000" if code(secret, 1) != "000000" else "111111"
    result = await cli("api-token", "create", "--name", "x", "--role", "viewer", "--mfa-code", wrong)
    assert result.code == 9
    assert "Error: MFA verification failed: Invalid MFA code" in result.err
    assert "session expired" not in result.err
    auth = await cli("test-auth")
    assert auth.code == 0, auth.err  # the session is fine


async def test_a_user_who_must_enrol_cannot_log_in_and_is_told_why(cli: Cli, deployed: RunningGateway) -> None:
    deployed.gateway.add_user("new@example.com", roles=("deployer",), mfa_required=True)
    result = await cli("login", "production", deployed.url, browser=ScriptedBrowser(email="new@example.com"))
    assert result.code == 7
    assert result.err.splitlines()[-2:] == [
        "Error: You must set up multi-factor authentication before you can continue using the CLI.",
        "Set up MFA in the gateway's web UI, then run the login again.",
    ]


async def test_mfa_enrolment_required_is_shown_with_its_fix(cli: Cli, deployed: RunningGateway) -> None:
    from rgw.testing.gateway.store import User

    deployed.gateway.add_user("new@example.com", roles=("deployer",))
    assert (await cli("login", "production", deployed.url, browser=ScriptedBrowser(email="new@example.com"))).code == 0
    # The gateway starts enforcing MFA for the user without revoking the session (a restart with a
    # new policy): the session still authenticates, most routes now refuse it with 403.
    deployed.gateway.store.put_user(User("new@example.com", "new", ["deployer"], True), time.time())
    apps = await cli("apps")
    assert apps.code == 9
    lines = apps.err.splitlines()
    assert lines[0].startswith("Error: MFA enrolment required: ")
    assert "permission denied" not in apps.err
    assert lines[1] == "Enrol MFA (an authenticator app or a security key) in the gateway's web UI, then run it again."
    auth = await cli("test-auth")
    assert auth.code == 9
    assert auth.out.startswith("Authenticated as new@example.com\n")
    assert auth.err.splitlines()[0] == (
        "Error: MFA enrolment required: this gateway requires MFA for your account, and none is enrolled yet"
    )


# -- 6. RACK_GATEWAY_URL with an API token ----------------------------------------------------------


async def test_rack_gateway_url_overrides_a_stored_rack_for_an_api_token(cli: Cli, deployed: RunningGateway) -> None:
    await cli("login", "production", deployed.url)
    with running_gateway(GatewaySettings(extensions=False, rack_name="other")) as other:
        token = other.gateway.create_api_token("ci", role="viewer")
        env = {"RACK_GATEWAY_API_TOKEN": token, "RACK_GATEWAY_URL": other.url}
        result = await cli("rack", "--json", env=env)
        assert result.code == 0, result.err
        assert json.loads(result.out)["gateway"] == other.url
        # ... while the stored session never goes there
        session = await cli("test-auth", "--json", env={"RACK_GATEWAY_URL": other.url})
        assert json.loads(session.out)["url"] == deployed.url


# -- 9. and 10. the stored session follows what the gateway says -------------------------------------


async def test_racks_shows_a_rejected_session_until_the_next_login(cli: Cli, deployed: RunningGateway) -> None:
    await cli("login", "production", deployed.url)
    entry = cli.config()["gateways"]["production"]
    deployed.gateway.revoke_session(entry["session_id"])
    assert (await cli("test-auth")).code == 3
    racks = await cli("racks")
    assert "session revoked: log in again" in racks.out
    assert json.loads((await cli("racks", "--json")).out)[0]["rejected"] == "session revoked"
    await cli("login", "production")
    racks = await cli("racks")
    assert "rejected" not in racks.out
    assert "logged in (89d left)" in racks.out or "logged in (90d left)" in racks.out


async def test_login_again_revokes_the_session_it_replaces(cli: Cli, deployed: RunningGateway) -> None:
    await cli("login", "production", deployed.url)
    first = cli.config()["gateways"]["production"]["token"]
    again = await cli("login", "production")
    assert again.code == 0, again.err
    second = cli.config()["gateways"]["production"]["token"]
    assert second != first
    assert deployed.gateway.session_valid(second)
    assert not deployed.gateway.session_valid(first)


# -- 11. the smaller ones -------------------------------------------------------------------------


async def test_test_auth_on_a_fresh_machine_is_not_logged_in(cli: Cli) -> None:
    result = await cli("test-auth")
    assert result.code == 3
    assert result.err.splitlines() == [
        "Error: not logged in: no rack is configured yet",
        "Please run: rack-gateway login <rack> <gateway-url>",
    ]


@pytest.mark.parametrize("words", [("admin",), ("dev", "admin")])
async def test_admin_commands_say_in_one_line_that_a_deployed_gateway_is_no_reference_gateway(
    cli: Cli, deployed: RunningGateway, words: tuple[str, ...]
) -> None:
    token = deployed.gateway.create_api_token("ops", role="admin")
    env = {"RACK_GATEWAY_API_TOKEN": token, "RACK_GATEWAY_URL": deployed.url}
    result = await cli(*words, "revoke-sessions", "--email", "a@example.com", env=env)
    assert result.code == 6
    assert result.err.splitlines() == [
        "Error: 'admin revoke-sessions' needs a reference gateway (rack-gateway dev gateway), and this one is not: "
        "on a deployed gateway, use its web UI (Users and Sessions)",
    ]
