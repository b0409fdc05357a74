"""``rack-gateway login`` in a real 80x24 pseudo-terminal (issue 22): what the screen shows at the end.

The CLI runs as a subprocess under pexpect against deployed-mode reference gateways, signing in
through the scripted browser; its output is played on ``tests.screen.Screen`` as a terminal would.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path

import pexpect

from rgw.testing import GatewaySettings, running_gateway
from tests.ports import refused_url
from tests.screen import Screen


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_", "NO_COLOR"))}
    env.pop("DISPLAY", None)
    env["BROWSER"] = f"{sys.executable} -m rgw.testing.scripted_browser --email developer@example.com %s"
    env["TERM"] = "xterm"
    env["NO_COLOR"] = "1"
    return env


def dead_url() -> str:
    return refused_url()  # held bound: no server of a test beside this one is given its port


def seed(config: Path, racks: dict[str, str]) -> None:
    config.mkdir(mode=0o700)
    gateways = {name: {"url": url} for name, url in racks.items()}
    (config / "config.json").write_text(json.dumps({"current": next(iter(racks)), "gateways": gateways}))
    (config / "config.json").chmod(0o600)


def run_in_pty(config: Path, *args: str) -> tuple[int | None, str]:
    """The CLI's exit status and everything it wrote to its 80x24 terminal."""
    transcript = io.StringIO()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "rgw", "--config", str(config), *args],
        env=child_env(),
        encoding="utf-8",
        timeout=90,
        dimensions=(24, 80),
    )
    child.logfile_read = transcript
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return child.exitstatus, transcript.getvalue()


def test_a_multi_rack_login_at_deployed_gateways_ends_on_one_screen(tmp_path: Path) -> None:
    down = dead_url()
    with running_gateway(GatewaySettings(extensions=False)) as gw:
        config = tmp_path / "cfg"
        seed(config, {"a": gw.url, "b": gw.url, "c": gw.url, "down": down})
        status, written = run_in_pty(config, "login", "--all", "--timeout", "12")
    assert status == 11, written
    shown = Screen(80, 24).feed(written.replace("\r\n", "\n")).history()
    page = re.escape("If it does not open, visit: http://127.0.0.1:") + r"\d+/[\w-]{22}"
    assert re.fullmatch(page, shown[1]), shown
    assert [shown[0], *shown[2:]] == [
        "Opening one browser tab to sign in to 4 racks...",
        "RACK  RESULT     DETAIL",
        "a     logged in  developer@example.com",
        "b     logged in  developer@example.com",
        "c     logged in  developer@example.com",
        f"down  failed     gateway {down.removeprefix('http://')} unreachable: connection refused",
        "Error: 1 of 4 rack logins failed: down",
        "The racks that succeeded stay logged in. Run the login again for the others.",
    ]  # no rack's own sign-in URL (the page's links), the failure said once before the table
    assert "/oauth/authorize" not in written


def test_verbose_lines_stay_on_the_terminal_under_the_live_block(tmp_path: Path) -> None:
    with running_gateway(GatewaySettings(extensions=False)) as gw:
        config = tmp_path / "cfg"
        seed(config, {"a": gw.url, "b": gw.url})
        status, written = run_in_pty(config, "-v", "login", "--all", "--timeout", "60")
    assert status == 0, written
    shown = Screen(80, 24).feed(written.replace("\r\n", "\n")).history()
    logged = [line for line in written.replace("\r\n", "\n").split("\n") if "[rgw +" in line]
    assert len(logged) > 5
    # Each log line is still there (a long one wraps onto more rows), none erased by a redraw ...
    assert sum(1 for row in shown if row.startswith("[rgw +")) == len(logged), "\n".join(shown)
    # ... and no line of the live block is left behind among them.
    assert not [row for row in shown if row[:1] in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏·✓✗"], "\n".join(shown)
    assert "Cancelled via cancel scope" not in written
