"""``status`` and ``api-token list`` at 80 columns: every line fits, long cells end in ``…``, long
details go on a line of their own, times read as people read them, and MFA is what the gateway says."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from tests.integration.conftest import Cli
from tests.integration.test_cli_status import closed_port_url, in_days, issue, write_config

pytestmark = pytest.mark.anyio

DEV = "developer@example.com"
AT_80 = {"COLUMNS": "80"}


async def test_status_says_not_enrolled_when_the_gateway_says_so_whatever_the_login_stored(
    cli: Cli, deployed_gateway: RunningGateway
) -> None:
    # A login that stored mfa_verified: true (as a deployed gateway may answer for an account with
    # no MFA at all), for a user the gateway now says has no MFA enrolled.
    token, _ = issue(deployed_gateway, DEV)
    entry = {"url": deployed_gateway.url, "token": token, "email": DEV, "expires_at": in_days(20), "mfa_verified": True}
    write_config(cli, "prod", {"prod": entry})
    table = await cli("status", env=AT_80)
    assert (table.code, table.err) == (0, "")
    assert table.lines == [
        "   RACK  USER                   SESSION  EXPIRES   MFA",
        "*  prod  developer@example.com  valid    20d left  not enrolled",
    ]
    answer = json.loads((await cli("status", "--json")).out)["racks"][0]
    assert (answer["mfa"], answer["mfa_enrolled"], answer["mfa_verified"]) == ("not enrolled", False, False)
    offline = await cli("status", "--offline", env=AT_80)  # nobody asked: what the login stored
    assert offline.lines[1] == "*  prod  developer@example.com  stored   20d left  verified at login"


async def test_status_fits_80_columns_with_long_users_and_details(cli: Cli, gateway: RunningGateway) -> None:
    good, _ = issue(gateway, DEV)
    long_user = "first.middle.last-name-of-someone@engineering.example-company.com"
    write_config(
        cli,
        "production-eu-west-1",
        {
            "production-eu-west-1": {
                "url": gateway.url,
                "token": good,
                "email": long_user,
                "expires_at": "2026-01-01T00:00:00Z",
            },
            "down": {
                "url": closed_port_url(),
                "token": "rgw_sess_" + uuid.uuid4().hex,
                "email": long_user,
                "expires_at": "not a time",
                "mfa_verified": False,
            },
        },
    )
    result = await cli("status", "--timeout", "1", env=AT_80)
    assert result.code == 0, result.err
    assert result.lines == [
        "   RACK                  USER          SESSION      EXPIRES         MFA",
        "   down                  first.middl…  unreachable  expiry unknown  not verified",
        "                                       connection refused",
        "*  production-eu-west-1  first.middl…  valid        89d left        not enrolled",
    ]
    assert max(len(line) for line in result.lines) <= 80
    full = json.loads((await cli("status", "--json", "--timeout", "1", env=AT_80)).out)
    assert {r["user"] for r in full["racks"]} == {long_user}  # --json keeps every cell whole


@pytest.fixture
def five_minutes_ago() -> Iterator[RunningGateway]:
    """A deployed-mode gateway whose clock stands five minutes behind: what it stamps was 5 min ago."""
    then = time.time() - 300
    with running_gateway(GatewaySettings(extensions=False, clock=lambda: then)) as gw:
        yield gw


async def test_api_token_list_fits_80_columns_with_readable_times_and_whole_ids(
    cli: Cli, five_minutes_ago: RunningGateway
) -> None:
    gw = five_minutes_ago.gateway
    admin = gw.create_api_token("bootstrap", role="admin")
    gw.create_api_token("deploy-bot-for-the-production-cluster-in-eu-west-1", role="viewer")
    env = {"RACK_GATEWAY_API_TOKEN": admin, "RACK_GATEWAY_URL": five_minutes_ago.url, **AT_80}
    result = await cli("api-token", "list", env=env)
    assert result.code == 0, result.err
    ids = [row["public_id"] for row in json.loads((await cli("api-token", "list", "--json", env=env)).out)]
    assert result.lines == [
        "NAME                                   USER               PERMISSIONS  LAST USED",
        "deploy-bot-for-the-production-cluste…  admin@example.com  role viewer  never",
        f"  ID {ids[0]}",
        "bootstrap                              admin@example.com  role admin   5 min ago",
        f"  ID {ids[1]}",
    ]
    assert max(len(line) for line in result.lines) <= 80
    one = await cli("api-token", "get", ids[1], env=env)
    stamp = (datetime.now(UTC) - timedelta(seconds=300)).strftime("%Y-%m-%d %H:%M UTC")
    assert f"Last used:   {stamp} (5 min ago)" in one.lines
    assert "Expires:     never" in one.lines


async def test_racks_fits_80_columns_and_says_a_rejection_on_its_own_line(cli: Cli) -> None:
    long_user = "first.middle.last-name-of-someone@engineering.example-company.com"
    write_config(
        cli,
        "eu-production-west",
        {
            "eu-production-west": {
                "url": "https://gateway.eu-production-west.example-company.com",
                "token": "rgw_sess_" + "a" * 30,
                "email": long_user,
                "expires_at": in_days(3),
                "session_rejected": {"reason": "session revoked", "at": "2026-12-01T00:00:00Z"},
            },
        },
    )
    result = await cli("racks", env=AT_80)
    assert result.code == 0, result.err
    assert result.lines == [
        "   NAME                URL                                      USER    SESSION",
        "*  eu-production-west  https://gateway.eu-production-west.exa…  first…  rejected",
        "     session revoked: log in again",
    ]
