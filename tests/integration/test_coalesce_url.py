"""Coalescing compares the gateway URL (issue 20, item 5).

Process 1 runs ``login prod <HOSTILE>`` and waits; process 2 runs ``login prod <REAL>``.  Before,
process 2 printed process 1's sign-in URL, took its session ("Logged in as" process 1's user) and
``prod`` ended up pointing at process 1's gateway.  Two logins coalesce only for the same rack at
the same (normalized) URL; otherwise the second waits for the first to end, then logs in itself.
Two real processes, two reference gateways.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from tests.integration.pipes import PipeReader
from tests.integration.procs import spawn


@pytest.fixture
def hostile() -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings()) as other:
        yield other


def test_a_login_to_the_same_rack_at_another_url_is_waited_for_not_taken(
    gateway: RunningGateway, hostile: RunningGateway, tmp_path: Path
) -> None:
    config = tmp_path / "cfg"
    first = spawn(config, "login", "prod", hostile.url, "--timeout", "60", "--no-browser")
    err1 = PipeReader(first.stderr, "the first login")
    prefix = "Open this URL in your browser: "
    hostile_sign_in = err1.wait_for(lambda line: line.startswith(prefix), 30, "sign-in URL").removeprefix(prefix)
    err1.wait_for(lambda line: line.startswith("Waiting for the browser"), 30, "wait for the sign-in")
    second = spawn(config, "login", "prod", gateway.url, "--timeout", "60")
    out2, err2 = PipeReader(second.stdout, "the second login"), PipeReader(second.stderr, "the second login")
    waiting = err2.wait_for(lambda line: line.startswith("A login to this rack"), 30, "the second login waits")
    hostile.gateway.complete_browser_login(parse_qs(urlsplit(hostile_sign_in).query)["state"][0], "ops@example.com")
    assert first.wait(timeout=60) == 0, err1.text()
    assert second.wait(timeout=60) == 0, err2.text()
    said = err2.text()
    assert waiting.rstrip("\n") == (
        f"A login to this rack at another gateway ({hostile.url}) is running in process {first.pid}; "
        "waiting for it to end, then logging in here..."
    )
    assert hostile_sign_in.strip() not in said  # never shown to this process's user
    assert "ops@example.com" not in said + out2.text()
    assert out2.text() == "Logged in as developer@example.com\n"
    entry = json.loads((config / "config.json").read_text())["gateways"]["prod"]
    assert entry["url"] == gateway.url
    assert entry["email"] == "developer@example.com"
    assert gateway.gateway.session_valid(entry["token"])
