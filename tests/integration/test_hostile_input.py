"""Hostile input on the command line and in config.json: a clean error, the right exit code, no traceback.

Issue 12's list: ``--timeout nan|inf|-1``, a stored rack URL ``http://[::1``, a config of 100000
nested ``[``, ``login '' URL``, rack names with escape sequences or 5000 characters, and
``login x 'http://[::1'``.  Each case asserts the exit code, the ``Error:`` line and that the
config file was left as it was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.conftest import Cli, CliResult

pytestmark = pytest.mark.anyio

UNREACHABLE = "http://127.0.0.1:1"


def write_config(cli: Cli, content: str) -> Path:
    cli.config_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    path = cli.config_dir / "config.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    return path


def clean(result: CliResult) -> list[str]:
    """The error lines of a failed run, after checking they are safe to show."""
    text = result.out + result.err
    assert "Traceback" not in text
    assert "\x1b" not in text
    assert all(len(line) < 400 for line in text.splitlines()), "an argument was echoed whole"
    lines = result.err.splitlines()
    assert len([line for line in lines if line.startswith("Error: ")]) == 1, result.err
    return lines


STORED = json.dumps({"current": "stored", "gateways": {"stored": {"url": "https://gw.example.com"}}})


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "-inf", "1e400"])
@pytest.mark.parametrize("command", [["apps"], ["logout"], ["login", "x", UNREACHABLE], ["api-token", "list"]])
async def test_a_timeout_that_is_not_a_number_of_seconds_is_a_usage_error(
    cli: Cli, command: list[str], value: str
) -> None:
    path = write_config(cli, STORED)
    result = await cli(*command, "--timeout", value)
    assert result.code == 2, result.err
    clean(result)
    assert result.err.splitlines()[0].startswith("Usage: rack-gateway ")
    assert result.err.splitlines()[-1].startswith("Error: Invalid value for '--timeout': ")
    assert path.read_text() == STORED


BROKEN_URL = json.dumps({"current": "bad", "gateways": {"bad": {"url": "http://[::1", "token": "rgw_sess_stored"}}})


@pytest.mark.parametrize(
    "command", [["apps"], ["test-auth"], ["rack"], ["logout"], ["login"], ["login", "bad"], ["api-token", "list"]]
)
async def test_a_stored_url_that_is_not_a_url_is_a_config_error_naming_the_rack(cli: Cli, command: list[str]) -> None:
    path = write_config(cli, BROKEN_URL)
    result = await cli(*command)
    assert result.code == 10, result.err
    clean(result)
    assert result.err.splitlines() == [
        "Error: rack 'bad' in the config file has an unusable URL: not a gateway URL: 'http://[::1' (Invalid IPv6 URL)",
        "Store a new URL with: rack-gateway login bad <gateway-url>",
    ]
    assert path.read_text() == BROKEN_URL


async def test_racks_still_lists_a_rack_whose_url_is_broken(cli: Cli) -> None:
    write_config(cli, BROKEN_URL)
    result = await cli("racks")
    assert result.code == 0, result.err
    assert "http://[::1" in result.out


@pytest.mark.parametrize("command", [["racks"], ["apps"], ["login", "x", UNREACHABLE], ["switch", "x"], ["logout"]])
async def test_a_config_nested_100000_deep_is_corrupt(cli: Cli, command: list[str]) -> None:
    path = write_config(cli, "[" * 100_000)
    result = await cli(*command)
    assert result.code == 10, result.err
    clean(result)
    assert result.err.splitlines() == [
        f"Error: config file {path} is not valid JSON (nested too deeply)",
        "Fix or move the file aside; rack-gateway will not overwrite it.",
    ]
    assert path.read_text() == "[" * 100_000


async def test_login_with_an_empty_rack_name_is_refused_and_the_current_rack_stays(cli: Cli) -> None:
    path = write_config(cli, STORED)
    result = await cli("login", "", UNREACHABLE)
    assert result.code == 2
    clean(result)
    assert result.err.splitlines() == [
        "Error: the rack name is empty",
        "Give the rack a name, e.g.: rack-gateway login production URL",
    ]
    assert path.read_text() == STORED
    assert (await cli("racks")).out.splitlines()[1].startswith("*  stored")


ESCAPES = "ev\x1b[2J\x1b]0;owned\x07il"


@pytest.mark.parametrize(
    ("args", "code", "first_line"),
    [
        (
            ["login", ESCAPES, UNREACHABLE],
            2,
            "Error: the rack name 'ev\\x1b[2J\\x1b]0;owned\\x07il' has spaces or control characters at its ends or "
            "inside it",
        ),
        (["login", "r" * 5000, UNREACHABLE], 2, "Error: the rack name is longer than 100 characters"),
        (["--rack", ESCAPES, "apps"], 10, "Error: unknown rack 'ev\\x1b[2J\\x1b]0;owned\\x07il' (configured: stored)"),
        (["--rack", "r" * 5000, "apps"], 10, f"Error: unknown rack '{'r' * 59}…' (configured: stored)"),
        (["switch", ESCAPES], 10, "Error: unknown rack 'ev\\x1b[2J\\x1b]0;owned\\x07il' (configured: stored)"),
        (["switch", "r" * 5000], 10, f"Error: unknown rack '{'r' * 59}…' (configured: stored)"),
        (
            ["login", "\u202eprod", UNREACHABLE],
            2,
            "Error: the rack name '\\u202eprod' has spaces or control characters at its ends or inside it",
        ),
    ],
)
async def test_a_rack_name_with_escapes_or_5000_characters_is_refused_and_printed_safely(
    cli: Cli, args: list[str], code: int, first_line: str
) -> None:
    path = write_config(cli, STORED)
    result = await cli(*args)
    assert result.code == code, result.err
    lines = clean(result)
    assert lines[0] == first_line
    assert path.read_text() == STORED


@pytest.mark.parametrize("url", ["http://[::1", "https://gw.example.com:99999", "http://\x1b[2Jgw", "https://xn--"])
async def test_login_to_a_url_that_is_not_one_is_a_usage_error(cli: Cli, url: str) -> None:
    path = write_config(cli, STORED)
    result = await cli("login", "x", url, "--timeout", "5")
    assert result.code == 2, result.err
    lines = clean(result)
    assert lines[0].startswith("Error: not a gateway URL: ")
    assert path.read_text() == STORED


async def test_a_new_rack_name_outside_the_plain_set_is_refused_before_anything_is_sent_or_stored(
    cli: Cli,
) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from rgw.testing.server import running_app

    seen: list[str] = []

    async def record(request: Request) -> JSONResponse:
        seen.append(request.url.path)
        return JSONResponse({"error": "not here"}, status_code=404)

    path = write_config(cli, STORED)
    with running_app(Starlette(routes=[Route("/{p:path}", record, methods=["GET", "POST"])])) as url:
        result = await cli("login", "prod$(touch${IFS}/tmp/x)", url, "--no-browser")
        renamed = await cli("login", "stored", url, "--no-browser", "--timeout", "2")
    assert result.code == 2, result.err
    assert clean(result) == [
        "Error: the rack name 'prod$(touch${IFS}/tmp/x)' has characters a new rack name cannot have: use letters "
        "(a-z, A-Z), digits, '.', '_' and '-', starting with a letter or digit",
        "Choose a name such as production or eu-staging (racks already in the config keep their names).",
    ]
    assert renamed.code != 2  # the check comes before anything is sent: here nothing was
    assert seen == ["/api/v1/auth/cli/start"]  # ... and only the second login reached the gateway
    assert path.read_text() == STORED


async def test_a_rack_another_tool_stored_under_an_odd_name_still_works(cli: Cli) -> None:
    odd = "my rack (eu)"
    write_config(cli, json.dumps({"current": "stored", "gateways": {odd: {"url": "https://gw.example.com"}}}))
    switched = await cli("switch", odd)
    assert (switched.code, switched.out) == (0, f"Switched to {odd}\n")
    result = await cli("login", odd, UNREACHABLE, "--no-browser", "--timeout", "1")
    assert result.code == 5, result.err  # past the name check, to the (unreachable) gateway
    assert "unreachable" in result.err
