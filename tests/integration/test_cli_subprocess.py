"""The CLI as a real subprocess against a gateway that behaves only like the deployed Go server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway


def run_cli(
    *args: str, config: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_"))}
    full_env.pop("DISPLAY", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rgw", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def browser_env(email: str = "developer@example.com") -> dict[str, str]:
    return {"BROWSER": f"{sys.executable} -m rgw.testing.scripted_browser --email {email} %s"}


@pytest.fixture
def deployed() -> RunningGateway:
    with running_gateway(GatewaySettings(extensions=False)) as gw:
        yield gw  # type: ignore[misc]


def test_login_test_auth_apps_logout_against_a_deployed_gateway(deployed: RunningGateway, tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    login = run_cli("login", "production", deployed.url, "--timeout", "60", config=config, env=browser_env())
    assert login.returncode == 0, login.stderr
    assert login.stdout == "Logged in as developer@example.com\n"
    assert "Opening browser for authentication..." in login.stderr
    data = json.loads((config / "config.json").read_text())
    token = data["gateways"]["production"]["token"]
    # The deployed-style gateway never echoes expiry; the login's own expires_at is stored.
    assert data["gateways"]["production"]["expires_at"]

    auth = run_cli("test-auth", config=config)
    assert auth.returncode == 0, auth.stderr
    assert auth.stdout.splitlines()[:2] == ["Authenticated as developer@example.com", "Role: deployer"]

    apps = run_cli("apps", config=config)
    assert apps.returncode == 0, apps.stderr
    assert apps.stdout.splitlines()[0].split() == ["APP", "STATUS", "GEN", "RELEASE"]

    out = run_cli("logout", config=config)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Logged out of production\n"
    assert not deployed.gateway.session_valid(token)
    for result in (login, auth, apps, out):
        assert token not in result.stdout + result.stderr


def test_no_browser_prints_the_url(deployed: RunningGateway, tmp_path: Path) -> None:
    result = run_cli("login", "dev", deployed.url, "--no-browser", "--timeout", "2", config=tmp_path / "c")
    assert result.returncode == 8
    assert f"Open this URL in your browser: {deployed.url}/oauth/authorize?state=" in result.stderr
    assert "Error: login to dev timed out" in result.stderr
    assert "email domain is not allowed" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_exits_130_and_leaves_the_config_untouched(deployed: RunningGateway, tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    config.mkdir(mode=0o700)
    (config / "config.json").write_text('{"current": "old", "gateways": {"old": {"url": "https://old"}}}')
    before = (config / "config.json").read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgw", "--config", str(config), "login", "dev", deployed.url, "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    # Wait until the login is really waiting (the URL line is printed), then press Ctrl-C.
    for line in proc.stderr:
        if line.startswith("Waiting for the browser"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert (config / "config.json").read_bytes() == before


def test_bad_flag_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("login", "--timeout", "soon", config=tmp_path)
    assert result.returncode == 2
    assert "Invalid value for '--timeout'" in result.stderr
    assert "Traceback" not in result.stderr
