"""The README's demo and the dev gateway, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

from tests.integration.pipes import PipeReader


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_"))}
    env.pop("DISPLAY", None)
    env.pop("BROWSER", None)
    return env


def test_demo_runs_a_whole_login() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rgw", "demo"], capture_output=True, text=True, env=clean_env(), timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in (
        "$ rack-gateway login demo http://127.0.0.1:",
        "Opening browser for authentication...",
        "Logged in as developer@example.com",
        "Authenticated as developer@example.com",
        "Role: deployer",
        "APP     STATUS   GEN  RELEASE",
        "Logged out of demo",
        "Demo complete: logged in, used the session, and logged out.",
    ):
        assert expected in out


def test_dev_gateway_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgw", "dev-gateway", "--port", "0", "--deployed-mode"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    out, err = PipeReader(proc.stdout, "the dev gateway"), PipeReader(proc.stderr, "the dev gateway")
    try:
        first = out.wait_for(lambda line: True, 30, "first line")
        assert first.startswith("Reference gateway listening on http://127.0.0.1:")
        assert "(deployed-gateway mode (no extensions))" in first
        url = first.split()[4]
        with urllib.request.urlopen(f"{url}/api/v1/health", timeout=10) as response:
            assert response.status == 200
        out.wait_for(lambda line: line == "Seeded users:\n", 30, "list of seeded users")
        out.wait_for(lambda line: "mfa@example.com" in line and "TOTP secret" in line, 30, "TOTP secret of mfa@")
    finally:
        proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert "Traceback" not in err.text()
    assert out.text().startswith(first)
