"""A rack name another tool wrote to config.json reaches no terminal raw, in any command (issue 20, item 7).

The name carries terminal escapes and a line break that would forge a line of its own; every command
that names a rack (a table, a notice, an error, a hint) shows it escaped, on the line it belongs to.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

HOSTILE = "e\x1b]0;PWNED\x07\x1b[2J\u202e\nLogged in as admin@example.com"
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
UNREACHABLE = "http://127.0.0.1:1"


def seed(cli: Cli, **racks: dict[str, str]) -> None:
    cli.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = cli.config_dir / "config.json"
    path.write_text(json.dumps({"current": HOSTILE, "gateways": racks}))
    path.chmod(0o600)


@pytest.mark.parametrize(
    "args",
    [
        ("racks",),
        ("rack", "--timeout", "1"),
        ("switch", HOSTILE),
        ("switch", "nope"),
        ("--rack", "plain", "logout"),
        ("status", "--offline"),
        ("status", "--timeout", "1"),
        ("test-auth", "--timeout", "1"),
        ("test-auth", "--mfa", "--timeout", "1"),
        ("apps", "--timeout", "1"),
        ("logout", "--local"),
        ("logout", "--all", "--local"),
        ("login", "--timeout", "1", "--no-browser"),
        ("login", "--rack", HOSTILE, "--rack", "plain", "--timeout", "1", "--no-browser"),
    ],
)
async def test_every_command_shows_a_hostile_rack_name_escaped_on_its_own_line(cli: Cli, args: tuple[str, ...]) -> None:
    seed(
        cli,
        **{HOSTILE: {"url": UNREACHABLE, "token": "rgw_sess_hostile_name_token"}, "plain": {"url": UNREACHABLE}},
    )
    result = await cli(*args)
    text = result.out + result.err
    assert "Traceback" not in text
    assert not FORBIDDEN.findall(text), text
    forged = [line for line in text.splitlines() if line.startswith("Logged in as")]
    assert forged == [], text
