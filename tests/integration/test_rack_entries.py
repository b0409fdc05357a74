"""Racks the config names: an unknown one is said the same way everywhere, a broken entry is listed
and refused with the same reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio


def write(cli: Cli, raw: dict[str, Any]) -> None:
    cli.config_dir.mkdir(mode=0o700, exist_ok=True)
    path = cli.config_dir / "config.json"
    path.write_text(json.dumps(raw))
    path.chmod(0o600)


UNKNOWN = [
    "Error: unknown rack 'nosuch' (configured: dev, prod)",
    "Please run: rack-gateway login nosuch <gateway-url>",
]


@pytest.mark.parametrize(
    "args",
    [["-r", "nosuch", "apps"], ["switch", "nosuch"], ["login", "nosuch"], ["logout", "-r", "nosuch"]],
)
async def test_an_unknown_rack_is_said_with_the_configured_racks_by_every_command(cli: Cli, args: list[str]) -> None:
    write(
        cli, {"current": "dev", "gateways": {"dev": {"url": "https://dev.example.com"}, "prod": {"url": "https://p"}}}
    )
    result = await cli(*args)
    assert (result.code, result.out) == (10, "")
    assert result.err.splitlines() == UNKNOWN


async def test_an_entry_whose_url_is_not_text_is_listed_and_refused_for_the_same_reason(cli: Cli) -> None:
    write(cli, {"current": "good", "gateways": {"good": {"url": "https://good.example.com"}, "odd": {"url": 5}}})
    racks = await cli("racks")
    assert racks.lines == [
        "   NAME  URL                       USER  SESSION",
        "*  good  https://good.example.com  -     logged out",
        "   odd   -                         -     unusable",
        "                                         its URL is a number, not text",
    ]
    listed = {r["name"]: r["unusable"] for r in json.loads((await cli("racks", "--json")).out)}
    assert listed == {"good": None, "odd": "its URL is a number, not text"}
    refused = [
        "Error: the config's rack 'odd' cannot be used: its URL is a number, not text",
        "Store a new URL with: rack-gateway login odd <gateway-url>",
    ]
    for args in (["-r", "odd", "apps"], ["login", "odd"], ["login", "--rack", "odd", "--rack", "good"]):
        result = await cli(*args)
        assert (result.code, result.err.splitlines()) == (10, refused), args
    status = await cli("status", "--offline", "-r", "odd")
    assert status.code == 10
    assert status.lines == [
        "   RACK  USER  SESSION     EXPIRES  MFA",
        "   good  -     logged out  -        -",
        "*  odd   -     refused     -        -",
        "               unusable: its URL is a number, not text",
    ]
    assert status.err.splitlines() == refused
