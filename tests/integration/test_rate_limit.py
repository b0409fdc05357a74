"""Living within a deployed gateway's rate limit (10 requests/s, burst 20, per client IP).

Every test here runs against the reference gateway in deployed mode, where the limit is on by
default, with the browser and every CLI on one loopback address, as on a developer's machine: the
browser's own requests (the OAuth callback and the sign-in step it leads to) must never be refused,
or that login can never complete.  Also: a 429 is said as such and always backs off, and every
command (not only login) rides out a flaky link.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from rgw.testing.faultproxy import FaultPlan, FaultProxy
from tests.integration.conftest import Cli
from tests.integration.flowkit import state_of
from tests.integration.procs import spawn

pytestmark = pytest.mark.anyio


def seed(config: Path, url: str, racks: list[str]) -> None:
    config.mkdir(parents=True, mode=0o700)
    (config / "config.json").write_text(json.dumps({"gateways": {r: {"url": url} for r in racks}}))


class SignInOnTheGateway:
    """The user signs in (on a good link of their own): the flaky link under test is the CLI's."""

    def __init__(self, gw: RunningGateway) -> None:
        self.gw = gw

    async def open(self, url: str) -> bool:
        self.gw.gateway.complete_browser_login(state_of(url), "developer@example.com")
        return True


def test_the_deployed_limit_is_on(deployed_gateway: RunningGateway) -> None:
    assert deployed_gateway.settings.rate_limit == (10.0, 20)


def test_twenty_login_processes_all_finish_and_no_browser_request_is_refused(
    deployed_gateway: RunningGateway, tmp_path: Path
) -> None:
    gw = deployed_gateway
    config = tmp_path / "cfg"
    racks = [f"r{i:02d}" for i in range(20)]
    seed(config, gw.url, racks)
    gw.gateway.reset_counts()
    procs = [spawn(config, "login", rack, "--timeout", "150") for rack in racks]
    for proc in procs:
        out, err = proc.communicate(timeout=200)
        assert proc.returncode == 0, err
        assert out == "Logged in as developer@example.com\n"
    assert gw.gateway.browser_refusals() == 0
    data = json.loads((config / "config.json").read_text())
    for rack in racks:
        assert gw.gateway.session_valid(data["gateways"][rack]["token"])
    # The processes shared one budget through the config directory.
    budget = config / "rate-budget.json"
    assert stat.S_IMODE(budget.stat().st_mode) == 0o600
    assert list(json.loads(budget.read_text())) == [f"http://127.0.0.1:{gw.url.rsplit(':', 1)[1]}"]


async def test_one_command_for_twenty_racks_refuses_no_browser_request(
    cli: Cli, deployed_gateway: RunningGateway
) -> None:
    gw = deployed_gateway
    racks = [f"r{i:02d}" for i in range(20)]
    seed(cli.config_dir, gw.url, racks)
    gw.gateway.reset_counts()
    args = ["login", "--parallel", "20", "--timeout", "150", "--json"]
    for rack in racks:
        args += ["--rack", rack]
    result = await cli(*args)
    assert result.code == 0, result.err
    assert [r["ok"] for r in json.loads(result.out)] == [True] * 20
    assert gw.gateway.browser_refusals() == 0
    assert gw.gateway.rate_limited_count("/api/v1/auth/") == 0  # the budget kept every process under it


class HeldClock:
    """The gateway's clock; ``held``, it stands still, so that its rate-limit buckets do not refill."""

    def __init__(self) -> None:
        self.frozen: float | None = None

    def __call__(self) -> float:
        return self.frozen if self.frozen is not None else time.time()


async def test_a_429_is_said_as_rate_limited_and_waits_at_least_the_floor(cli: Cli) -> None:
    clock = HeldClock()
    with running_gateway(GatewaySettings(extensions=False, clock=clock)) as gw:
        assert (await cli("login", "dev", gw.url, "--timeout", "60")).code == 0
        token = cli.config()["gateways"]["dev"]["token"]
        # Somebody else on this address spends the whole /auth/mfa/* burst while the gateway's clock
        # stands still (no refill): the CLI's first request is refused, however slowly it starts.
        clock.frozen = time.time()
        async with httpx.AsyncClient(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}) as other:
            while (await other.get("/api/v1/auth/mfa/status")).status_code != 429:
                pass
            other_refused = gw.gateway.rate_limited_count("/api/v1/auth/mfa/")

        async def time_moves_on_once_the_cli_was_refused() -> None:
            with anyio.fail_after(30):
                while gw.gateway.rate_limited_count("/api/v1/auth/mfa/") <= other_refused:
                    await anyio.sleep(0.02)
            clock.frozen = None

        async with anyio.create_task_group() as tg:
            tg.start_soon(time_moves_on_once_the_cli_was_refused)
            result = await cli("test-auth", "mfa", "--timeout", "20")  # /auth/mfa/* is limited
    assert result.code == 0, result.err
    retries = [line for line in result.err.splitlines() if "retrying" in line]
    assert retries
    for line in retries:
        assert line.startswith("Rate limited by the gateway - retrying (attempt ")
        wait = float(line.rsplit("next in ", 1)[1].split(" s)")[0])
        assert wait >= 1.0  # Retry-After: 0 is not an invitation to retry at once
    assert "unreachable" not in result.err.lower()


@pytest.mark.parametrize("command", [["test-auth"], ["apps"], ["rack"], ["test-auth", "--json"]])
async def test_read_commands_ride_out_a_flaky_link(
    cli: Cli, deployed_gateway: RunningGateway, command: list[str]
) -> None:
    plan = FaultPlan(reset_rate=0.3, error_rate=0.2, seed=11)
    with FaultProxy(deployed_gateway.url, plan) as proxy:
        login = await cli("login", "dev", proxy.url, "--timeout", "120", browser=SignInOnTheGateway(deployed_gateway))
        assert login.code == 0, login.err
        proxy.stats.resets = proxy.stats.errors_503 = 0
        for run in range(30):  # until the command has met both kinds of fault (at least 5 runs)
            result = await cli(*command, "--timeout", "60")
            assert result.code == 0, result.err
            stats = proxy.stats.snapshot()
            if run >= 4 and stats.resets and stats.errors_503:
                break
    assert stats.resets > 0
    assert stats.errors_503 > 0  # the faults happened, and every run of the command rode them out


async def test_logout_and_api_tokens_ride_out_a_flaky_link(cli: Cli, deployed_gateway: RunningGateway) -> None:
    token = deployed_gateway.gateway.create_api_token("ci", role="admin")
    plan = FaultPlan(reset_rate=0.3, error_rate=0.2, seed=5)
    with FaultProxy(deployed_gateway.url, plan) as proxy:
        env = {"RACK_GATEWAY_API_TOKEN": token, "RACK_GATEWAY_URL": proxy.url}
        for _ in range(3):
            listing = await cli("api-token", "list", "--json", "--timeout", "60", env=env)
            assert listing.code == 0, listing.err
        browser = SignInOnTheGateway(deployed_gateway)
        assert (await cli("login", "dev", proxy.url, "--timeout", "120", browser=browser)).code == 0
        stored = cli.config()["gateways"]["dev"]["token"]
        out = await cli("logout", "--timeout", "60")
        assert out.code == 0, out.err
    assert not deployed_gateway.gateway.session_valid(stored)


async def test_login_through_the_scripted_browser_costs_the_browser_two_requests(
    deployed_gateway: RunningGateway, cli: Cli
) -> None:
    """The deployed callback redirects to a second step; the budget is sized for both (PROTOCOL.md)."""
    gw = deployed_gateway
    gw.gateway.reset_counts()
    browser = ScriptedBrowser()
    assert (await cli("login", "dev", gw.url, browser=browser)).code == 0
    assert gw.gateway.request_count("/api/v1/auth/cli/callback") == 1
    assert any("/api/v1/auth/cli/mfa" in url for url in browser.visited)
