"""``-v/--verbose`` and ``RACK_GATEWAY_DEBUG=1``: requests, retry decisions, lock waits; nothing secret."""

from __future__ import annotations

import io
import json
import logging
import os
import platform
import re
import uuid
from pathlib import Path

import anyio
import pyotp
import pytest

from rgw import __version__
from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.locks import FileLock
from rgw.testing import RunningGateway, ScriptedBrowser
from rgw.testing.faultproxy import FaultPlan, FaultProxy
from tests.integration.conftest import Cli
from tests.integration.flowkit import wait_until

pytestmark = pytest.mark.anyio

DEV = "developer@example.com"


def logged_in(cli: Cli, gw: RunningGateway, url: str | None = None) -> str:
    user = gw.gateway.user(DEV)
    assert user is not None
    token, _ = gw.gateway.sessions.issue(
        user, device_id=str(uuid.uuid4()), device_name="test", device_os="linux/x86_64", mfa_verified_at=None
    )
    cli.config_dir.mkdir(mode=0o700, exist_ok=True)
    path = cli.config_dir / "config.json"
    racks = {"dev": {"url": url or gw.url, "token": token, "email": DEV}, "stg": {"url": "https://stg.example.com"}}
    path.write_text(json.dumps({"current": "dev", "gateways": racks}))
    path.chmod(0o600)
    return token


def debug_lines(err: str) -> list[str]:
    """The ``--verbose`` lines of ``err``, with times (which vary) written as ``T``."""
    lines = [line for line in err.splitlines() if line.startswith("[rgw ")]
    lines = [re.sub(r"^\[rgw \+\d+\.\d{3}s\]", "[rgw T]", line) for line in lines]
    return [re.sub(r"\(\d+ ms\)", "(N ms)", line) for line in lines]


def header(config: Path) -> list[str]:
    """The first lines of every verbose run: who is running, and which config file it uses."""
    return [
        f"[rgw T] rack-gateway {__version__} (python {platform.python_version()})",
        f"[rgw T] config: {config}/config.json",
    ]


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["-v", "test-auth"], {}),
        (["test-auth", "--verbose"], {}),
        (["test-auth"], {"RACK_GATEWAY_DEBUG": "1"}),
    ],
)
async def test_verbose_shows_each_request_and_never_the_token(
    cli: Cli, gateway: RunningGateway, args: list[str], env: dict[str, str]
) -> None:
    token = logged_in(cli, gateway)
    result = await cli(*args, env=env)
    assert result.code == 0, result.err
    assert result.out.startswith(f"Authenticated as {DEV}\n")  # stdout stays clean
    assert debug_lines(result.err) == [*header(cli.config_dir), f"[rgw T] GET {gateway.url}/api/v1/info -> 200 (N ms)"]
    assert result.err == "".join(line + "\n" for line in result.err.splitlines() if line.startswith("[rgw "))
    assert token not in result.err
    assert logging.getLogger("rgw").handlers == []  # the run's handler is gone with the run


async def test_without_verbose_nothing_is_logged(cli: Cli, gateway: RunningGateway) -> None:
    logged_in(cli, gateway)
    for env in ({}, {"RACK_GATEWAY_DEBUG": "0"}, {"RACK_GATEWAY_DEBUG": ""}):
        result = await cli("test-auth", env=env)
        assert (result.code, result.err) == (0, ""), env


async def test_verbose_shows_every_retry_decision_and_wait(cli: Cli, gateway: RunningGateway) -> None:
    with FaultProxy(gateway.url, FaultPlan(error_rate=1.0)) as proxy:  # every request answered 503
        token = logged_in(cli, gateway, proxy.url)
        result = await cli("-v", "test-auth", "--timeout", "1")
    assert result.code == 6
    lines = debug_lines(result.err)
    assert lines[:2] == header(cli.config_dir)
    request = f"[rgw T] GET {proxy.url}/api/v1/info -> 503 (N ms)"
    attempts = (len(lines) - 3) // 2
    assert attempts >= 2
    expected = header(cli.config_dir)
    for attempt in range(1, attempts + 1):
        expected += [request, f"[rgw T] retry: attempt {attempt} failed (HTTP 503); next in WAIT s"]
    expected += [
        request,
        f"[rgw T] retry: giving up after attempt {attempts + 1} (the next try would end past the deadline)",
    ]
    assert [re.sub(r"next in \d+\.\d\d s", "next in WAIT s", line) for line in lines] == expected
    assert token not in result.err


async def test_verbose_shows_a_lock_wait_and_who_held_it(cli: Cli, gateway: RunningGateway) -> None:
    logged_in(cli, gateway)
    lock = FileLock(cli.config_dir / "config.json.lock")
    assert lock.try_acquire()
    lock.write_holder(json.dumps({"pid": os.getpid(), "command": "rack-gateway"}).encode())
    err = io.StringIO()
    app = App(options=Options(config_dir=cli.config_dir), environ={}, out=io.StringIO(), err=err, interactive=False)
    codes: list[int] = []

    async def switch() -> None:
        codes.append(await run(["switch", "stg", "-v"], obj=app))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(switch)
            await wait_until(lambda: "waiting up to" in err.getvalue(), "the lock wait is logged")
            lock.release()
    finally:
        lock.release()
    assert codes == [0]
    lines = [re.sub(r"after \d+\.\d\d s", "after W s", line) for line in debug_lines(err.getvalue())]
    assert lines == [
        *header(cli.config_dir),
        # The holder named as the lock file says (this test process wrote it, as rack-gateway would).
        f"[rgw T] lock: config.json.lock is held by process {os.getpid()} (rack-gateway); waiting up to 30 s",
        "[rgw T] lock: got config.json.lock after W s",
    ]
    assert json.loads((cli.config_dir / "config.json").read_text())["current"] == "stg"


async def test_a_verbose_login_with_an_mfa_code_shows_neither_the_code_nor_the_new_session(
    cli: Cli, gateway: RunningGateway
) -> None:
    secret = gateway.gateway.totp_secret("mfa@example.com")
    assert secret is not None
    code = pyotp.TOTP(secret).now()
    result = await cli(
        "-v",
        "--mfa-code",
        code,
        "login",
        "dev",
        gateway.url,
        "--timeout",
        "60",
        browser=ScriptedBrowser(email="mfa@example.com"),
    )
    assert result.code == 0, result.err
    token = cli.config()["gateways"]["dev"]["token"]
    lines = debug_lines(result.err)
    assert lines[:2] == header(cli.config_dir)
    request = re.compile(
        rf"\[rgw T\] (GET|POST) {re.escape(gateway.url)}/api/v1/auth/cli/(start|complete|mfa) -> \d{{3}} \(N ms\)"
    )
    budget = re.compile(r"\[rgw T\] budget: waiting \d+\.\d\d s for a request slot of http://127\.0\.0\.1:\d+")
    assert all(request.fullmatch(line) or budget.fullmatch(line) for line in lines[2:]), lines
    assert any(line.startswith(f"[rgw T] POST {gateway.url}/api/v1/auth/cli/mfa -> 200") for line in lines)
    assert code not in result.err
    assert token not in result.err
