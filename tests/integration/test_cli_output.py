"""The exact output of the read-only commands: ``apps --json``, ``rack --json``, ``api-token get --json``
and ``test-auth``, against a reference gateway whose clock the test holds, so every time is known."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

DAY = 86400.0


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(float(int(time.time())))


@pytest.fixture
def staging(clock: Clock) -> Iterator[RunningGateway]:
    """A gateway for the rack it calls ``staging``, on the test's clock."""
    with running_gateway(GatewaySettings(clock=clock, rack_name="staging")) as gw:
        yield gw


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shown(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def as_printed(value: Any) -> str:
    """What ``--json`` prints: indented, keys sorted, one document and a newline."""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


async def login(cli: Cli, gw: RunningGateway, rack: str, email: str = "developer@example.com") -> None:
    result = await cli("login", rack, gw.url, "--timeout", "60", browser=ScriptedBrowser(email=email))
    assert result.code == 0, result.err
    assert result.out == f"Logged in as {email}\n"


async def test_apps_json_is_the_racks_apps(cli: Cli, staging: RunningGateway) -> None:
    await login(cli, staging, "stg")
    staging.gateway.rack.create_app("billing")
    rack = staging.gateway.rack
    expected = [
        {"name": name, "generation": "3", "release": rack.app(name)["release"], "status": "running"}
        for name in ("api", "billing", "web", "worker")
    ]
    assert len({app["release"] for app in expected}) == 4  # the releases tell the apps apart
    result = await cli("apps", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == expected
    assert result.out == as_printed(expected)
    assert result.err == ""


async def test_rack_json_names_the_local_rack_and_the_gateways_rack(cli: Cli, staging: RunningGateway) -> None:
    await login(cli, staging, "stg")
    result = await cli("rack", "--json")
    assert result.code == 0, result.err
    expected = {
        "rack": "stg",  # the name this machine gave the rack
        "name": "staging",  # the rack's own name
        "provider": "aws",
        "region": "us-east-1",
        "status": "running",
        "version": "3.19.7",
        "gateway": staging.url,
        "user": "developer@example.com",
    }
    assert json.loads(result.out) == expected
    assert result.out == as_printed(expected)
    assert result.err == ""


async def test_api_token_get_json_is_the_token_the_gateway_holds(
    cli: Cli, staging: RunningGateway, clock: Clock
) -> None:
    await login(cli, staging, "stg", "admin@example.com")
    created_at = clock.now
    token = staging.gateway.create_api_token("deploy-bot", role="viewer", user_email="deployer@example.com")
    row = next(t for t in staging.gateway.sessions.tokens() if t.name == "deploy-bot")
    clock.now += 2 * DAY + 5
    used = await cli("apps", "--api-token", token)  # the token is used once, two days later
    assert used.code == 0, used.err
    clock.now += 60
    result = await cli("api-token", "get", row.public_id, "--json")
    assert result.code == 0, result.err
    owner = staging.gateway.store.user_id("deployer@example.com")
    expected = {  # the deployed record shape (PROTOCOL.md, "API token records")
        "id": row.id,
        "public_id": row.public_id,
        "name": "deploy-bot",
        "user_id": owner,
        "created_by_user_id": owner,  # created on the gateway's side for that user
        "created_by_email": "deployer@example.com",
        "created_by_name": "Deployer User",
        "permissions": row.permissions,
        "created_at": rfc3339(created_at),
        "last_used_at": rfc3339(created_at + 2 * DAY + 5),
        "expires_at": None,
    }
    assert owner
    assert row.permissions  # the viewer role's permissions
    assert json.loads(result.out) == expected
    assert result.out == as_printed(expected)
    assert token not in result.out + result.err


async def test_test_auth_shows_the_user_the_roles_and_the_expiry_the_gateway_issued(
    cli: Cli, staging: RunningGateway, clock: Clock
) -> None:
    staging.gateway.add_user("lead@example.com", "Team Lead", ("deployer", "ops"))
    await login(cli, staging, "stg", "lead@example.com")
    logged_in_at = clock.now
    session_id = cli.config()["gateways"]["stg"]["session_id"]
    # A day later the session is used again: the gateway slides its expiry, and test-auth shows that.
    clock.now += DAY + 7
    result = await cli("test-auth")
    assert result.code == 0, result.err
    issued = staging.gateway.store.row("SELECT expires_at FROM sessions WHERE id = ?", (session_id,))
    assert issued is not None
    assert issued["expires_at"] == logged_in_at + DAY + 7 + staging.settings.session_ttl
    assert result.lines == [
        "Authenticated as lead@example.com",
        "Role: deployer, ops",
        f"Session expires: {shown(issued['expires_at'])}",
    ]
    assert result.err == ""


async def test_test_auth_with_an_api_token(cli: Cli, staging: RunningGateway) -> None:
    token = staging.gateway.create_api_token("ci", role="viewer", user_email="deployer@example.com")
    result = await cli("test-auth", env={"RACK_GATEWAY_API_TOKEN": token, "RACK_GATEWAY_URL": staging.url})
    assert result.code == 0, result.err
    assert result.lines == ["Authenticated as deployer@example.com", "Role: viewer", "Credential: API token"]
    assert token not in result.out + result.err
