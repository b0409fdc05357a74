"""``login`` of a stored rack whose gateway does not answer: retried until ``--timeout``, said so.

The virtual-time tests (tests/unit/test_late_gateway.py) show the gateway that comes up 30 s late;
this one shows the CLI wiring: a rack stored in config.json counts as a gateway that answered
before, each retry line says that Ctrl-C gives up, and the real cause is the error at the end.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Cli
from tests.integration.test_cli_status import closed_port_url

pytestmark = pytest.mark.anyio


async def test_a_stored_racks_login_is_retried_until_its_timeout_saying_ctrl_c_gives_up(cli: Cli) -> None:
    url = closed_port_url()
    cli.config_dir.mkdir(mode=0o700)
    path = cli.config_dir / "config.json"
    path.write_text(json.dumps({"current": "dev", "gateways": {"dev": {"url": url, "email": "dev@example.com"}}}))
    path.chmod(0o600)
    before = path.read_bytes()
    result = await cli("login", "dev", "--no-browser", "--no-loopback", "--timeout", "2")
    assert result.code == 5, result.err
    lines = result.err.splitlines()
    retries = [line for line in lines if "retrying" in line]
    assert retries
    assert all(line.endswith("; Ctrl-C gives up") for line in retries)
    assert lines[len(retries)] == f"Error: gateway {url.removeprefix('http://')} unreachable: connection refused"
    assert path.read_bytes() == before
