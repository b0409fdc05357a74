"""``login RACK URL`` for a stored rack at another gateway: said, and the old session revoked there."""

from __future__ import annotations

import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio


async def test_login_to_another_url_says_so_and_revokes_the_session_on_the_old_gateway(
    cli: Cli, gateway: RunningGateway
) -> None:
    assert (await cli("login", "d1", gateway.url)).code == 0
    old = cli.config()["gateways"]["d1"]["token"]
    with running_gateway(GatewaySettings()) as other:
        result = await cli("login", "d1", other.url)
        assert result.code == 0, result.err
        assert result.out == "Logged in as developer@example.com\n"
        err = result.err.splitlines()
        assert err[:2] == [
            f"Note: rack d1 pointed at {gateway.url}; this login points it at {other.url}.",
            f"Its session at {gateway.url} will be revoked once this login succeeds.",
        ]
        assert err[-1] == f"Revoked the session rack d1 had at {gateway.url}."
        assert cli.config()["gateways"]["d1"]["url"] == other.url
    with pytest.raises(Exception, match="session revoked"):
        gateway.gateway.sessions.authenticate(old)


async def test_a_re_login_at_the_same_url_says_nothing_of_moving(cli: Cli, gateway: RunningGateway) -> None:
    assert (await cli("login", "d1", gateway.url)).code == 0
    again = await cli("login", "d1", gateway.url)
    assert again.code == 0
    assert "pointed at" not in again.err


async def test_a_failed_login_to_another_url_leaves_the_rack_and_its_session_alone(
    cli: Cli, gateway: RunningGateway
) -> None:
    assert (await cli("login", "d1", gateway.url)).code == 0
    before = cli.config()["gateways"]["d1"]
    with running_gateway(GatewaySettings()) as other:
        result = await cli("login", "d1", other.url, "--no-browser", "--timeout", "1")
    assert result.code == 8
    assert "Revoked" not in result.err
    assert cli.config()["gateways"]["d1"] == before
    assert gateway.gateway.sessions.authenticate(before["token"]) is not None


async def test_no_login_lock_file_stays_behind_after_logins(cli: Cli, gateway: RunningGateway) -> None:
    for rack in ("d1", "d2", "d3"):
        assert (await cli("login", rack, gateway.url)).code == 0
    assert (await cli("login", "--all")).code == 0
    assert sorted(p.name for p in cli.config_dir.glob("login-*.lock")) == []
