"""What ``--help`` shows a user (their commands first, the reference gateway's apart, global options
once) and ``version`` (the client's and the current rack's gateway's, never failing)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from rgw import __version__
from rgw.testing import RunningGateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio
EMAIL = "developer@example.com"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sections(help_text: str) -> dict[str, list[str]]:
    """The listing's sections of a ``--help``: title -> the command names in it, in order."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in help_text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":") and line != "Options:":
            current = found.setdefault(line[:-1], [])
        elif current is not None and line.startswith("  ") and not line.startswith("   "):
            current.append(line.split()[0])
        elif not line:
            current = None
    return found


async def help_of(cli: Cli, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """``rack-gateway WORDS --help``: click prints help on the process's stdout, not the App's."""
    capsys.readouterr()
    result = await cli(*words, "--help")
    assert result.code == 0, result.err
    return result.out + capsys.readouterr().out


async def test_help_lists_the_seeds_commands_then_helpers_then_the_reference_gateways_apart(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = await help_of(cli, capsys)
    assert sections(shown) == {
        "Commands": ["login", "logout", "test-auth", "rack", "racks", "switch", "apps", "api-token"],
        "Helpers": ["status", "token", "completion", "version"],
        "Development (the reference gateway)": ["dev"],
    }
    for old in ("demo", "dev-gateway", "admin"):
        assert f"  {old} " not in shown


async def test_dev_lists_gateway_demo_and_admin_and_names_the_old_names(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = await help_of(cli, capsys, "dev")
    assert sections(shown)["Commands"] == ["gateway", "demo", "admin"]
    assert "The old names rack-gateway dev-gateway, demo and admin work as well." in shown


@pytest.mark.parametrize("words", [("dev-gateway",), ("dev", "gateway"), ("demo",), ("dev", "demo"), ("admin",)])
async def test_the_old_and_new_names_of_the_reference_gateways_commands_both_work(
    cli: Cli, capsys: pytest.CaptureFixture[str], words: tuple[str, ...]
) -> None:
    assert (await help_of(cli, capsys, *words)).startswith(f"Usage: rack-gateway {' '.join(words)} [OPTIONS]")


@pytest.mark.parametrize("words", [("racks",), ("login",), ("api-token", "create"), ("dev", "gateway"), ("version",)])
async def test_a_commands_help_names_the_global_options_once_instead_of_repeating_them(
    cli: Cli, capsys: pytest.CaptureFixture[str], words: tuple[str, ...]
) -> None:
    shown = await help_of(cli, capsys, *words)
    for text in ("Rack to use", "Config directory", "API token instead", "MFA method at", "A TOTP or", "Show every"):
        assert text not in shown  # the global options' own help lines (rack-gateway --help has them)
    assert shown.rstrip().endswith(
        "Global options (-r/--rack, --config, --api-token, --mfa-method, --mfa-code,\n  -v): see rack-gateway --help."
    )


async def test_racks_help_offers_no_mfa_code_yet_the_global_option_is_still_taken(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = await help_of(cli, capsys, "racks")
    assert shown.count("--mfa-code") == 1  # the epilog's list of global options
    assert "A TOTP or backup code" not in shown
    taken = await cli("racks", "--mfa-code", "123456")
    assert taken.code == 0
    assert taken.err == "No racks configured. Please run: rack-gateway login <rack> <gateway-url>\n"


# -- version ---------------------------------------------------------------------------------


def logged_in(cli: Cli, gw: RunningGateway, rack: str = "dev") -> None:
    user = gw.gateway.user(EMAIL)
    assert user is not None
    token, _ = gw.gateway.sessions.issue(
        user, device_id=str(uuid.uuid4()), device_name="t", device_os="linux/x86_64", mfa_verified_at=None
    )
    write_config(cli.config_dir, {rack: {"url": gw.url, "token": token, "email": EMAIL}}, current=rack)


def write_config(directory: Path, racks: dict[str, dict[str, str]], current: str) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / "config.json").write_text(json.dumps({"current": current, "gateways": racks}))
    (directory / "config.json").chmod(0o600)


async def test_version_shows_the_client_and_the_current_racks_gateway(cli: Cli, gateway: RunningGateway) -> None:
    logged_in(cli, gateway)
    result = await cli("version")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"CLI version: {__version__} (python)",
        f"Gateway version: {__version__} (commit reference; rack dev; {gateway.url})",
    ]
    as_json = json.loads((await cli("version", "--json")).out)
    assert as_json == {
        "cli_version": __version__,
        "client": "python",
        "gateway": "ok",
        "gateway_version": __version__,
        "gateway_commit": "reference",
        "rack": "dev",
        "gateway_url": gateway.url,
    }


async def test_version_without_a_rack_says_not_connected(cli: Cli) -> None:
    result = await cli("version")
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[1] == "Gateway version: (not connected)"


async def test_version_of_a_rack_logged_out_says_not_logged_in(cli: Cli) -> None:
    write_config(cli.config_dir, {"staging": {"url": "https://staging.example.com"}}, current="staging")
    result = await cli("version", "--json")
    assert result.code == 0
    assert json.loads(result.out) | {"cli_version": None} == {
        "cli_version": None,
        "client": "python",
        "gateway": "not logged in",
        "gateway_version": None,
        "gateway_commit": None,
        "rack": "staging",
        "gateway_url": None,
    }
    text = await cli("version")
    assert text.out.splitlines()[1] == "Gateway version: (not logged in; rack staging)"


async def test_version_of_a_rack_whose_session_the_gateway_rejects_says_not_logged_in(
    cli: Cli, gateway: RunningGateway
) -> None:
    write_config(cli.config_dir, {"dev": {"url": gateway.url, "token": "rgw_session_" + "x" * 40}}, current="dev")
    result = await cli("version")
    assert result.code == 0
    assert result.out.splitlines()[1] == f"Gateway version: (not logged in; rack dev; {gateway.url})"


async def test_version_of_an_unreachable_gateway_says_so_within_its_bounded_time(cli: Cli, refused_url: str) -> None:
    write_config(cli.config_dir, {"dev": {"url": refused_url, "token": "rgw_session_" + "x" * 40}}, current="dev")
    result = await cli("version")
    assert result.code == 0
    assert result.out.splitlines() == [
        f"CLI version: {__version__} (python)",
        f"Gateway version: (unreachable; rack dev; {refused_url})",
    ]
