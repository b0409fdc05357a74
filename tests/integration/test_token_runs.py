"""API-token runs (``RACK_GATEWAY_API_TOKEN`` / ``--api-token``): what they need, and what they say."""

from __future__ import annotations

import pytest

from rgw.testing import RunningGateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio


async def test_a_token_run_with_no_rack_and_no_url_names_rack_gateway_url(cli: Cli) -> None:
    result = await cli("apps", env={"RACK_GATEWAY_API_TOKEN": "rgw_token_ci"})
    assert (result.code, result.out) == (10, "")
    assert result.err == (
        "Error: RACK_GATEWAY_URL is not set: no gateway for the API token\n"
        "Please run: RACK_GATEWAY_URL=https://gateway.example.com rack-gateway ...\n"
    )


async def test_a_token_run_with_racks_but_none_selected_names_both_ways(cli: Cli) -> None:
    cli.config_dir.mkdir(mode=0o700)
    (cli.config_dir / "config.json").write_text('{"gateways": {"a": {"url": "https://a.example.com"}}}')
    (cli.config_dir / "config.json").chmod(0o600)
    result = await cli("apps", env={"RACK_GATEWAY_API_TOKEN": "rgw_token_ci"})
    assert result.code == 10
    assert result.err == (
        "Error: no rack selected\n"
        "Please run: rack-gateway switch <rack>   (or set RACK_GATEWAY_RACK)\n"
        "or give the API token's gateway: RACK_GATEWAY_URL=https://gateway.example.com\n"
    )


async def test_a_token_and_url_run_goes_on_past_a_corrupt_config_file(
    cli: Cli, deployed_gateway: RunningGateway
) -> None:
    cli.config_dir.mkdir(mode=0o700)
    path = cli.config_dir / "config.json"
    path.write_text('{"gateways": {"a": ')
    path.chmod(0o600)
    token = deployed_gateway.gateway.create_api_token("ci", role="viewer")
    env = {"RACK_GATEWAY_API_TOKEN": token, "RACK_GATEWAY_URL": deployed_gateway.url}
    result = await cli("apps", env=env)
    assert result.code == 0, result.err
    assert result.err == (
        f"Warning: config file {path} is not valid JSON (Expecting value: line 1 column 20 (char 19))\n"
        "(this API-token run needs no config file: going on without it)\n"
    )
    assert path.read_text() == '{"gateways": {"a": '  # never rewritten
    alone = await cli("apps", env={"RACK_GATEWAY_API_TOKEN": token})  # no URL: the config is needed
    assert alone.code == 10
    assert alone.err.startswith(f"Error: config file {path} is not valid JSON")


async def test_a_plain_http_token_run_is_told_the_runs_own_opt_in_not_a_login(cli: Cli) -> None:
    env = {"RACK_GATEWAY_API_TOKEN": "rgw_token_ci", "RACK_GATEWAY_URL": "http://10.1.2.3:8080"}
    result = await cli("apps", env=env)
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        "Error: refusing to send credentials in clear text to http://10.1.2.3:8080 (plain HTTP to a host that is "
        "not this machine)\n"
        "Use https://, or if this gateway really is plain HTTP on a network you trust,\n"
        "opt in for this run: RACK_GATEWAY_INSECURE_HTTP=1 rack-gateway ...\n"
    )


async def test_test_auth_with_an_api_token_says_what_a_deployed_gateway_tells(
    cli: Cli, deployed_gateway: RunningGateway
) -> None:
    token = deployed_gateway.gateway.create_api_token("ci", role="viewer")
    env = {"RACK_GATEWAY_API_TOKEN": token, "RACK_GATEWAY_URL": deployed_gateway.url}
    result = await cli("test-auth", env=env)
    assert result.code == 0, result.err
    assert result.lines == [
        "Authenticated as admin@example.com",
        "Role: none named (an API token has its own permissions)",
        "Credential: API token",
    ]
