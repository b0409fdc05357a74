"""One reader of the terminal per run: what the paste reader read reaches the MFA prompt."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import anyio
import pyotp
import pytest

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.testing import GatewaySettings, ScriptedBrowser, running_gateway

pytestmark = pytest.mark.anyio

MFA_USER = "mfa@example.com"


class PromptWatch(io.StringIO):
    """stderr that notices the TOTP prompt."""

    def __init__(self) -> None:
        super().__init__()
        self.prompted = anyio.Event()

    def write(self, text: str) -> int:
        if "Enter TOTP code:" in text:
            self.prompted.set()
        return super().write(text)


async def test_a_code_begun_before_the_mfa_prompt_reaches_it(tmp_path: Path) -> None:
    """The first digits arrive while the paste reader listens (it reads them, no line yet); the
    rest after the MFA prompt took the terminal over.  The prompt must see the whole code."""
    with running_gateway(GatewaySettings()) as gw:
        secret = gw.gateway.totp_secret(MFA_USER)
        assert secret is not None
        read_end, write_end = os.pipe()
        stdin = open(read_end, closefd=False)  # noqa: SIM115 - closed below
        err = PromptWatch()
        app = App(
            options=Options(config_dir=tmp_path / "cfg"),
            environ={},
            stdin=stdin,
            out=io.StringIO(),
            err=err,
            browser=ScriptedBrowser(email=MFA_USER),
            interactive=True,
        )
        code = pyotp.TOTP(secret).now()
        os.write(write_end, code[:4].encode())
        try:
            async with anyio.create_task_group() as tg:

                async def type_the_rest() -> None:
                    await err.prompted.wait()
                    os.write(write_end, code[4:].encode() + b"\n")
                    os.close(write_end)

                tg.start_soon(type_the_rest)
                exit_code = await run(["login", "dev", gw.url, "--timeout", "60"], obj=app)
        finally:
            stdin.close()
            os.close(read_end)
        assert exit_code == 0, err.getvalue()
        assert "MFA verified" in err.getvalue()
        entry = json.loads((tmp_path / "cfg" / "config.json").read_text())["gateways"]["dev"]
        assert entry["mfa_verified"] is True
