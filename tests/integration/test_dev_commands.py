"""The README's demo and the dev gateway, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.integration.pipes import PipeReader
from tests.oidc_provider import Provider
from tests.ports import refused_port


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
        code = proc.wait(timeout=30)  # in finally: a failed assertion leaves no gateway running
    assert code == 130
    assert "Traceback" not in err.text()
    assert out.text().startswith(first)


@pytest.mark.parametrize(
    ("flags", "limited"),
    [(["--deployed-mode"], True), (["--deployed-mode", "--no-rate-limit"], False), (["--rate-limit"], True)],
    ids=["deployed-default", "deployed-off", "extensions-on"],
)
def test_dev_gateway_rate_limit_flag(flags: list[str], limited: bool) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgw", "dev-gateway", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    out, err = PipeReader(proc.stdout, "the dev gateway"), PipeReader(proc.stderr, "the dev gateway")
    try:
        url = out.wait_for(lambda line: line.startswith("Reference gateway listening on"), 30, "its URL").split()[4]
        expected = (
            "Rate limit: 10 requests/s, burst 20, per client IP, on the login routes\n"
            if limited
            else ("Rate limit: off\n")
        )
        out.wait_for(lambda line: line == expected, 30, expected.strip())
        # Requests until the first 429 (at most 60): with the limit on, the burst of 20 passes and
        # one soon after is refused, however slowly this machine sends them (it would have to send
        # fewer than 10 a second for none to be); with it off, none is.
        codes = []
        for _ in range(60):
            request = urllib.request.Request(f"{url}/api/v1/auth/cli/start", data=b"", method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    codes.append(response.status)
            except urllib.error.HTTPError as exc:
                codes.append(exc.code)
            if codes[-1] == 429:
                break
        assert codes[:20] == [200] * 20
        assert (codes[-1] == 429) is limited
        assert set(codes[:-1]) == {200}
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)  # in finally: a failed assertion leaves no gateway running
    assert code == 130
    assert "Traceback" not in err.text()


def test_dev_gateway_signs_in_through_an_openid_connect_provider(oidc_provider: Provider) -> None:
    env = {**clean_env(), "RGW_OIDC_CLIENT_SECRET": "from-the-environment"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgw", "dev-gateway", "--port", "0", "--oidc-issuer", oidc_provider.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out, err = PipeReader(proc.stdout, "the dev gateway"), PipeReader(proc.stderr, "the dev gateway")
    try:
        url = out.wait_for(lambda line: line.startswith("Reference gateway listening on"), 30, "its URL").split()[4]
        said = out.wait_for(lambda line: line.startswith("Sign-in: "), 30, "the sign-in line")
        assert said == (
            f"Sign-in: OpenID Connect provider {oidc_provider.url} (client id rack-gateway), "
            f"redirect URI {url}/api/v1/auth/cli/callback\n"
        )
        request = urllib.request.Request(f"{url}/api/v1/auth/cli/start", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            start = json.loads(response.read())
        # With extensions the gateway's own first hop sends the browser on to the provider.
        assert start["auth_url"] == f"{url}/auth/cli/begin?state={start['state']}"
        request = urllib.request.Request(start["auth_url"])
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(request, timeout=10)
        redirect.value.close()
        assert redirect.value.code == 302
        assert redirect.value.headers["Location"].startswith(oidc_provider.url + "/oauth2/authorize?")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 130
    assert "from-the-environment" not in out.text() + err.text()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_dev_gateway_with_an_unreachable_provider_says_so_at_start() -> None:
    port = refused_port()
    result = subprocess.run(
        [sys.executable, "-m", "rgw", "dev-gateway", "--port", "0", "--oidc-issuer", f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-2:] == [
        f"Error: cannot use the OpenID Connect provider http://127.0.0.1:{port}: identity provider unreachable "
        "(discovery: ConnectError)",
        "Check --oidc-issuer (the provider's issuer URL, without /.well-known/...) and that it is reachable.",
    ]
    assert "Traceback" not in result.stderr
