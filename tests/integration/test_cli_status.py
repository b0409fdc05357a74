"""``status`` (good, rejected, unreachable and logged-out racks; offline; JSON) and ``token``."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.testing import RunningGateway
from tests.integration.conftest import Cli
from tests.ports import refused_url

pytestmark = pytest.mark.anyio

DEV = "developer@example.com"
ADMIN = "admin@example.com"


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    return refused_url()  # held bound: no server of a test beside this one is given its port


def issue(gw: RunningGateway, email: str) -> tuple[str, int]:
    user = gw.gateway.user(email)
    assert user is not None
    token, row = gw.gateway.sessions.issue(
        user, device_id=str(uuid.uuid4()), device_name="test", device_os="linux/x86_64", mfa_verified_at=None
    )
    return token, row.id


def write_config(cli: Cli, current: str, gateways: dict[str, Any]) -> None:
    cli.config_dir.mkdir(mode=0o700, exist_ok=True)
    path = cli.config_dir / "config.json"
    path.write_text(json.dumps({"current": current, "gateways": gateways}))
    path.chmod(0o600)


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def four_racks(cli: Cli, gateway: RunningGateway) -> dict[str, str]:
    """dev: a good session (current); prod: a session the gateway revoked; down: a gateway nobody
    answers for; staging: logged out.  Returns the tokens."""
    good, _ = issue(gateway, DEV)
    revoked, revoked_id = issue(gateway, ADMIN)
    gateway.gateway.sessions.revoke(revoked_id)
    down = "rgw_sess_" + uuid.uuid4().hex
    write_config(
        cli,
        "dev",
        {
            "dev": {"url": gateway.url, "token": good, "email": DEV, "expires_at": in_days(3)},
            "prod": {
                "url": gateway.url,
                "token": revoked,
                "email": ADMIN,
                "expires_at": in_days(10),
                "mfa_verified": True,
            },
            "down": {
                "url": closed_port_url(),
                "token": down,
                "email": "ops@example.com",
                "expires_at": in_days(5),
                "mfa_verified": False,
            },
            "staging": {"url": "https://staging.example.com"},
        },
    )
    return {"dev": good, "prod": revoked, "down": down}


async def test_status_asks_every_gateway_and_shows_each_racks_answer(
    cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]
) -> None:
    result = await cli("status", "--timeout", "1")
    assert result.code == 0, result.err  # the current rack's session is good
    assert result.lines == [
        "   RACK     USER                   SESSION      EXPIRES   MFA",
        "*  dev      developer@example.com  valid        89d left  not enrolled",
        "   down     ops@example.com        unreachable  5d left   not verified",
        "                                   connection refused",
        "   prod     admin@example.com      rejected     10d left  verified at login",
        "                                   session revoked",
        "   staging  -                      logged out   -         -",
    ]
    assert result.err == ""  # no retry chatter: the table says what happened to each rack
    for token in four_racks.values():
        assert token not in result.out


async def test_status_remembers_a_rejection_and_offline_shows_what_is_stored(
    cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]
) -> None:
    assert (await cli("status", "--timeout", "1")).code == 0
    assert cli.config()["gateways"]["prod"]["session_rejected"]["reason"] == "session revoked"
    result = await cli("status", "--offline")
    assert result.code == 0, result.err
    assert result.lines == [
        "   RACK     USER                   SESSION     EXPIRES   MFA",
        "*  dev      developer@example.com  stored      89d left  -",  # the gateway's sliding expiry
        "   down     ops@example.com        stored      5d left   not verified",
        "   prod     admin@example.com      rejected    10d left  verified at login",
        "                                   session revoked",
        "   staging  -                      logged out  -         -",
    ]


async def test_status_exits_with_the_current_racks_error(
    cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]
) -> None:
    rejected = await cli("status", "--timeout", "1", "--rack", "prod")
    assert rejected.code == 3
    assert rejected.lines[4:6] == [
        "*  prod     admin@example.com      rejected     10d left  verified at login",
        "                                   session revoked",
    ]
    assert rejected.err == (
        "Error: session expired or invalid\n"
        f"Please run: rack-gateway login prod {gateway.url}\n"
        "(an administrator revoked your session)\n"
    )
    down = await cli("status", "--timeout", "1", "-r", "down")
    assert down.code == 5
    address = cli.config()["gateways"]["down"]["url"].removeprefix("http://")
    assert down.err.splitlines()[0] == f"Error: gateway {address} unreachable: connection refused"
    logged_out = await cli("status", "--offline", "-r", "staging")
    assert logged_out.code == 3
    assert logged_out.err == (
        "Error: not logged in to staging\nPlease run: rack-gateway login staging https://staging.example.com\n"
    )


async def test_status_json(cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]) -> None:
    result = await cli("status", "--json", "--timeout", "1")
    assert result.code == 0, result.err
    answer = json.loads(result.out)
    assert answer["current"] == "dev"
    assert answer["checked"] is True
    by_name = {r["name"]: r for r in answer["racks"]}
    assert [r["name"] for r in answer["racks"]] == ["dev", "down", "prod", "staging"]
    assert {name: (r["session"], r["detail"]) for name, r in by_name.items()} == {
        "down": ("unreachable", "connection refused"),
        "dev": ("valid", None),
        "prod": ("rejected", "session revoked"),
        "staging": ("logged_out", None),
    }
    assert by_name["dev"]["current"] is True
    assert by_name["dev"]["user"] == DEV
    assert (by_name["dev"]["mfa_enrolled"], by_name["dev"]["mfa_required"]) == (False, False)
    assert by_name["prod"]["mfa_verified"] is True
    assert by_name["staging"]["expires_at"] is None
    assert four_racks["dev"] not in result.out


async def test_status_with_no_rack_configured(cli: Cli) -> None:
    result = await cli("status")
    assert result.code == 3
    assert result.out == ""
    assert result.err == (
        "Error: not logged in: no rack is configured yet\nPlease run: rack-gateway login <rack> <gateway-url>\n"
    )


async def test_token_prints_the_current_session_or_the_api_token(
    cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]
) -> None:
    result = await cli("token")
    assert (result.code, result.out, result.err) == (0, four_racks["dev"] + "\n", "")  # not a terminal: no warning
    other = await cli("token", "-r", "down")
    assert other.out == four_racks["down"] + "\n"
    api = await cli("token", env={"RACK_GATEWAY_API_TOKEN": "rgw_token_ci"})
    assert api.out == "rgw_token_ci\n"
    flag = await cli("token", "--api-token", "rgw_token_flag")
    assert flag.out == "rgw_token_flag\n"


async def test_token_refuses_a_missing_or_rejected_session(
    cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]
) -> None:
    missing = await cli("token", "-r", "staging")
    assert (missing.code, missing.out) == (3, "")
    assert missing.err == (
        "Error: not logged in to staging\nPlease run: rack-gateway login staging https://staging.example.com\n"
    )
    assert (await cli("status", "--timeout", "1")).code == 0  # marks prod's session rejected
    rejected = await cli("token", "-r", "prod")
    assert (rejected.code, rejected.out) == (3, "")
    assert rejected.err == (
        "Error: session expired or invalid\n"
        f"Please run: rack-gateway login prod {gateway.url}\n"
        "(the gateway rejected this session: session revoked)\n"
    )
    assert four_racks["prod"] not in rejected.err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_token_on_a_terminal_warns_on_stderr_first(
    cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]
) -> None:
    out, err = Terminal(), io.StringIO()
    app = App(options=Options(config_dir=cli.config_dir), environ={}, out=out, err=err, interactive=False)
    assert await run(["token"], obj=app) == 0
    assert out.getvalue() == four_racks["dev"] + "\n"
    assert err.getvalue() == (
        f"Warning: this is a secret: anyone who sees it can act as you on {gateway.url}. "
        "Pipe it into the program that needs it rather than showing it.\n"
    )


async def test_logout_all_revokes_every_session_and_forgets_them_even_when_unreachable(
    cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]
) -> None:
    result = await cli("logout", "--all", "--timeout", "1")
    assert result.code == 11
    assert result.lines == [
        "RACK  RESULT",
        "dev   logged out (session revoked)",
        "down  logged out here only: gateway unreachable (connection refused)",
        "prod  logged out (session revoked)",  # the gateway answers a revoked session's logout as any other
    ]
    assert result.err == (
        "Error: 1 of 3 sessions could not be revoked on their gateway: down\n"
        "They were removed from this machine but stay valid on those gateways until they expire; "
        "an administrator can revoke them in the gateway's web UI.\n"
    )
    racks = cli.config()["gateways"]
    assert sorted(racks) == ["dev", "down", "prod", "staging"]  # the racks stay configured
    assert [name for name, entry in racks.items() if "token" in entry] == []
    with pytest.raises(Exception, match="session revoked"):
        gateway.gateway.sessions.authenticate(four_racks["dev"])  # really revoked on the gateway


async def test_logout_all_exits_0_when_every_gateway_answered(cli: Cli, gateway: RunningGateway) -> None:
    one, _ = issue(gateway, DEV)
    two, _ = issue(gateway, ADMIN)
    write_config(cli, "a", {"a": {"url": gateway.url, "token": one}, "b": {"url": gateway.url, "token": two}})
    result = await cli("logout", "--all")
    assert (result.code, result.err) == (0, "")
    assert result.lines == ["RACK  RESULT", "a     logged out (session revoked)", "b     logged out (session revoked)"]
    again = await cli("logout", "--all")
    assert (again.code, again.out, again.err) == (0, "", "No rack has a session to log out of.\n")


async def test_logout_all_local_revokes_nothing(cli: Cli, gateway: RunningGateway) -> None:
    token, _ = issue(gateway, DEV)
    write_config(cli, "a", {"a": {"url": gateway.url, "token": token}})
    result = await cli("logout", "--all", "--local")
    assert result.code == 0
    assert result.lines == ["RACK  RESULT", "a     logged out here only (--local)"]
    assert result.err == (
        "The sessions were not revoked on their gateways (--local); they stay valid there until they expire.\n"
    )
    assert "token" not in cli.config()["gateways"]["a"]
    assert gateway.gateway.sessions.authenticate(token) is not None  # still valid on the gateway


async def test_status_on_a_deployed_gateway_keeps_the_stored_expiry(cli: Cli, deployed_gateway: RunningGateway) -> None:
    token, _ = issue(deployed_gateway, DEV)
    write_config(
        cli, "prod", {"prod": {"url": deployed_gateway.url, "token": token, "email": DEV, "expires_at": in_days(20)}}
    )
    result = await cli("status")
    assert (result.code, result.err) == (0, "")
    assert result.lines == [
        "   RACK  USER                   SESSION  EXPIRES   MFA",
        "*  prod  developer@example.com  valid    20d left  not enrolled",  # no expiry echo, no session object
    ]


async def test_status_says_when_an_api_token_overrides_the_sessions(
    cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]
) -> None:
    result = await cli("status", "--offline", env={"RACK_GATEWAY_API_TOKEN": "rgw_token_ci"})
    assert result.code == 0
    assert result.err == (
        "Note: an API token is set (--api-token or RACK_GATEWAY_API_TOKEN); commands use it, not these sessions.\n"
    )
    assert "rgw_token_ci" not in result.out + result.err


async def test_status_on_a_colour_terminal_colours_the_session_column_only(
    cli: Cli, gateway: RunningGateway, four_racks: dict[str, str]
) -> None:
    out, err = Terminal(), io.StringIO()
    app = App(
        options=Options(config_dir=cli.config_dir), environ={"TERM": "xterm"}, out=out, err=err, interactive=False
    )
    assert await run(["status", "--timeout", "1"], obj=app) == 0
    lines = out.getvalue().splitlines()
    assert lines[1] == ("*  dev      developer@example.com  \x1b[32mvalid\x1b[0m        89d left  not enrolled")
    assert "\\x1b" not in out.getvalue()  # real colour codes, not escaped ones
    assert "\x1b[31mrejected\x1b[0m     10d left" in lines[4]
