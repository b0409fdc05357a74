"""The CLI as a real subprocess against a gateway that behaves only like the deployed Go server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from tests.integration.pipes import PipeReader
from tests.leaks import WATCH


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_"))}
    full_env.pop("DISPLAY", None)
    full_env.pop("BROWSER", None)
    full_env.update(env or {})
    return full_env


def run_cli(
    *args: str, config: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "rgw", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=timeout,
        check=False,
    )
    WATCH.record(args, done.stdout, done.stderr, where="subprocess")
    return done


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


def auth_state(stderr: str, prefix: str) -> str:
    """The ``state`` of the sign-in URL on the stderr line that starts with ``prefix``."""
    url = next(line.removeprefix(prefix) for line in stderr.splitlines() if line.startswith(prefix))
    return parse_qs(urlsplit(url).query)["state"][0]


def error_lines(stderr: str) -> list[str]:
    """The ``Error:`` line and the hint after it."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Error: "))
    return lines[start:]


TIMEOUT_HINT = (
    "Likely causes: the browser sign-in was not finished, your email domain is not allowed on this "
    "gateway, or the consent page was cancelled. Run the login again."
)


def test_no_browser_prints_the_url(deployed: RunningGateway, tmp_path: Path) -> None:
    deployed.gateway.reset_counts()
    result = run_cli("login", "dev", deployed.url, "--no-browser", "--timeout", "2", config=tmp_path / "c")
    assert result.returncode == 8
    prefix = "Open this URL in your browser: "
    assert f"{prefix}{deployed.url}/oauth/authorize?state=" in result.stderr
    assert "Opening browser" not in result.stderr
    # The URL names a real login, still waiting on the gateway, that no browser ever opened.
    state = deployed.gateway.login.state(auth_state(result.stderr, prefix))
    assert state is not None
    assert (state.stage, state.email) == ("browser", None)
    assert deployed.gateway.request_count("/oauth/authorize") == 0
    assert error_lines(result.stderr) == [
        "Error: login to dev timed out after 2 s without a completed sign-in",
        TIMEOUT_HINT,
    ]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "c" / "config.json").exists()


def test_a_wrong_domain_on_a_deployed_gateway_ends_at_the_deadline(deployed: RunningGateway, tmp_path: Path) -> None:
    deployed.gateway.reset_counts()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgw", "--config", str(tmp_path / "c"), "login", "dev", deployed.url, "--timeout", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(browser_env("mallory@evil.com")),
    )

    def rejected() -> bool:  # the browser signed in as mallory and reached the callback, which refused it
        return deployed.gateway.request_count("/api/v1/auth/cli/callback") == 1 and any(
            row["email"] == "mallory@evil.com" for row in deployed.gateway.store.rows("SELECT email FROM login_states")
        )

    try:
        while not rejected():
            assert proc.poll() is None, "the login ended before the gateway rejected the sign-in"
            time.sleep(0.05)  # polling the gateway's record; bounded by the login's own --timeout
        assert proc.poll() is None, "the sign-in was rejected only after the login had ended"
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 8, err
    assert out == ""
    # The deployed gateway told the CLI nothing: the login is still pending there, signed in as mallory.
    state = deployed.gateway.login.state(auth_state(err, "If it does not open, visit: "))
    assert state is not None
    assert (state.stage, state.email, state.error) == ("browser", "mallory@evil.com", None)
    assert deployed.gateway.store.rows("SELECT id FROM sessions WHERE email = ?", ("mallory@evil.com",)) == []
    assert deployed.gateway.request_count("/api/v1/auth/cli/complete") >= 1
    assert error_lines(err) == ["Error: login to dev timed out after 6 s without a completed sign-in", TIMEOUT_HINT]
    assert "Traceback" not in err
    assert not (tmp_path / "c" / "config.json").exists()


def test_a_wrong_domain_on_an_extension_gateway_fails_at_once(tmp_path: Path) -> None:
    with running_gateway(GatewaySettings()) as gw:
        # A 600 s deadline the test could never wait for: only the gateway's answer ends this login.
        result = run_cli(
            "login", "dev", gw.url, "--timeout", "600", config=tmp_path / "c", env=browser_env("mallory@evil.com")
        )
        # The gateway failed the login and the CLI collected the failure: the state is gone.
        assert gw.gateway.login.state(auth_state(result.stderr, "If it does not open, visit: ")) is None
    assert result.returncode == 7
    assert result.stdout == ""
    assert error_lines(result.stderr) == [
        "Error: email domain not allowed",
        "Signed in as mallory@evil.com. Your Google Workspace domain isn't configured in the gateway. "
        "Contact your administrator to add your domain to GOOGLE_ALLOWED_DOMAIN.",
    ]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "c" / "config.json").exists()


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
    out, err = PipeReader(proc.stdout, "the login"), PipeReader(proc.stderr, "the login")
    try:
        # Wait until the login is really waiting (the URL line is printed), then press Ctrl-C.
        err.wait_for(lambda line: line.startswith("Waiting for the browser"), 30, "wait for the sign-in")
    finally:
        proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert out.text() == ""
    assert "Traceback" not in err.text()
    assert (config / "config.json").read_bytes() == before


def test_bad_flag_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("login", "--timeout", "soon", config=tmp_path)
    assert result.returncode == 2
    assert "Invalid value for '--timeout'" in result.stderr
    assert "Traceback" not in result.stderr
