"""MFA at login typed into a real pseudo-terminal: ``python -m rgw login`` as a subprocess under pexpect."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import pexpect
import pyotp

from rgw.testing import GatewaySettings, running_gateway

MFA_USER = "mfa@example.com"


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_"))}
    env.pop("DISPLAY", None)
    env["BROWSER"] = f"{sys.executable} -m rgw.testing.scripted_browser --email {MFA_USER} %s"
    env["TERM"] = "dumb"
    return env


def test_totp_typed_at_the_prompt(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    with running_gateway(GatewaySettings()) as gw:
        secret = gw.gateway.totp_secret(MFA_USER)
        assert secret is not None
        transcript = io.StringIO()
        child = pexpect.spawn(
            sys.executable,
            ["-m", "rgw", "--config", str(config), "login", "dev", gw.url, "--timeout", "60"],
            env=child_env(),
            encoding="utf-8",
            timeout=60,
            dimensions=(24, 200),
        )
        child.logfile_read = transcript
        try:
            child.expect_exact("OAuth successful")
            child.expect_exact("MFA verification required.")
            child.expect_exact("Enter TOTP code:")
            code = pyotp.TOTP(secret).now()
            child.sendline(code)
            child.expect_exact("MFA verified")
            child.expect_exact(f"Logged in as {MFA_USER}")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0, transcript.getvalue()
        assert code not in transcript.getvalue()  # typed with echo off
        entry = json.loads((config / "config.json").read_text())["gateways"]["dev"]
        assert entry["email"] == MFA_USER
        assert entry["mfa_verified"] is True
        assert gw.gateway.session_valid(entry["token"])


def test_totp_typed_while_a_deployed_gateway_waits(tmp_path: Path) -> None:
    """Issue 21: a gateway without the stage extension; the browser signs in and stays on its MFA page
    (no TOTP secret); the code typed in the pty goes to ``/auth/cli/mfa`` and the login completes."""
    config = tmp_path / "cfg"
    with running_gateway(GatewaySettings(extensions=False)) as gw:
        secret = gw.gateway.totp_secret(MFA_USER)
        assert secret is not None
        transcript = io.StringIO()
        child = pexpect.spawn(
            sys.executable,
            ["-m", "rgw", "--config", str(config), "--mfa-method", "totp", "login", "dev", gw.url, "--timeout", "60"],
            env=child_env(),
            encoding="utf-8",
            timeout=60,
            dimensions=(24, 200),
        )
        child.logfile_read = transcript
        try:
            child.expect_exact("MFA verification required.")
            child.expect_exact("Enter TOTP code (here, or in the browser once signed in):")
            # The browser is a separate process: until its sign-in is done the gateway answers
            # session_incomplete, and the user types the code again, as the line asks.
            for _ in range(60):
                child.sendline(pyotp.TOTP(secret).now())
                if child.expect_exact(["MFA verified", "finish signing in"]) == 0:
                    break
                time.sleep(0.5)  # a user reading the line, then typing again
            else:
                raise AssertionError("the code was never taken:\n" + transcript.getvalue())
            child.expect_exact(f"Logged in as {MFA_USER}")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0, transcript.getvalue()
        entry = json.loads((config / "config.json").read_text())["gateways"]["dev"]
        assert entry["mfa_verified"] is True
        assert gw.gateway.session_valid(entry["token"])
