"""Another local process, planted files, and a gateway that sends escape sequences (issue 12, items 2, 3, 5).

Each test sets up what an attacker could (a symlink in the config directory, a world-writable
directory, a gateway whose words carry terminal escapes) and checks that rgw neither follows it nor
prints it raw, with the error saying what to fix.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rgw.config import ConfigStore
from rgw.errors import ConfigLockTimeout
from rgw.locks import FileLock
from rgw.testing import RunningGateway
from rgw.testing.server import running_app
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

ESC = "\x1b]0;PWNED\x07\x1b[2J\x1b[1ALogged in as admin@example.com"
SHOWN = "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[1ALogged in as admin@example.com"


def seed(config: Path, gateways: dict[str, Any], current: str | None = None) -> None:
    config.mkdir(mode=0o700, parents=True, exist_ok=True)
    raw: dict[str, Any] = {"gateways": gateways}
    if current:
        raw["current"] = current
    (config / "config.json").write_text(json.dumps(raw))
    (config / "config.json").chmod(0o600)


# -- item 2: the lock holder is named by PID and command name, never by its arguments ---------------


def test_a_lock_holder_records_no_argument_values(tmp_path: Path) -> None:
    # A real rack-gateway process with a token on its command line, holding the config lock.
    config = tmp_path / "cfg"
    seed(config, {"b": {"url": "https://b.example.com"}})
    script = (
        "import sys, time; from pathlib import Path; from rgw.locks import FileLock, holder_record\n"
        "sys.argv = ['/usr/bin/rack-gateway', '--api-token', 'rgw_SECRET_123', 'switch', 'b']\n"
        f"lock = FileLock(Path({str(config / 'config.json.lock')!r})); assert lock.try_acquire()\n"
        "lock.write_holder(holder_record()); print('held', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        record = (config / "config.json.lock").read_text()
        assert "SECRET" not in record
        assert "--api-token" not in record
        assert json.loads(record) == {"pid": holder.pid, "command": "rack-gateway"}
    finally:
        holder.communicate(input="", timeout=30)
    # The holder is gone: a waiter says so (its record is still in the file).
    assert json.loads((config / "config.json.lock").read_text())["pid"] == holder.pid


async def test_a_waiter_names_a_holder_that_is_no_longer_running(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path, lock_timeout=0.2)
    held = FileLock(store.lock_path)
    assert held.try_acquire()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    held.write_holder(json.dumps({"pid": int(dead.stdout), "command": "rack-gateway"}).encode())
    try:
        with pytest.raises(ConfigLockTimeout) as info:
            await store.update(lambda data: None)
    finally:
        held.release()
    assert f"process {int(dead.stdout)} (rack-gateway, no longer running)" in info.value.message


# -- item 5: files and links in the config directory ----------------------------------------------


async def test_a_lock_file_that_is_a_symlink_is_not_followed(cli: Cli, tmp_path: Path) -> None:
    seed(cli.config_dir, {"a": {"url": "https://a.example.com"}, "b": {"url": "https://b.example.com"}}, "a")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (cli.config_dir / "config.json.lock").symlink_to(victim)
    result = await cli("switch", "b")
    assert result.code == 10
    lock = cli.config_dir / "config.json.lock"
    assert result.err == (
        f"Error: {lock} is a symbolic link; rack-gateway will not follow it\n"
        f"Remove it (rm {lock}); rack-gateway creates its lock files itself.\n"
    )
    assert "Traceback" not in result.err
    assert victim.read_text() == "precious\n"
    assert cli.config()["current"] == "a"


async def test_a_symlink_loop_as_lock_file_is_a_clean_error(cli: Cli) -> None:
    seed(cli.config_dir, {"a": {"url": "https://a.example.com"}}, "a")
    lock = cli.config_dir / "config.json.lock"
    lock.symlink_to(lock)
    result = await cli("switch", "a")
    assert result.code == 10
    assert result.err.startswith(f"Error: {lock} is a symbolic link; rack-gateway will not follow it\n")


@pytest.mark.parametrize(("mode", "what"), [(0o777, "directory"), (0o770, "directory")])
async def test_a_config_directory_others_can_write_is_refused(cli: Cli, mode: int, what: str) -> None:
    seed(cli.config_dir, {"a": {"url": "https://a.example.com", "token": "t"}}, "a")
    cli.config_dir.chmod(mode)
    before = (cli.config_dir / "config.json").read_bytes()
    for args in (("racks",), ("switch", "a")):
        result = await cli(*args)
        assert result.code == 10
        assert result.err == (
            f"Error: config {what} {cli.config_dir} can be written by other users (mode {mode:o}); "
            f"rack-gateway will not use it\nPlease run: chmod 700 {cli.config_dir}\n"
        )
    assert (cli.config_dir / "config.json").read_bytes() == before


async def test_a_config_file_others_can_write_is_refused(cli: Cli) -> None:
    seed(cli.config_dir, {"a": {"url": "https://a.example.com"}}, "a")
    path = cli.config_dir / "config.json"
    path.chmod(0o666)
    result = await cli("racks")
    assert result.code == 10
    assert f"Please run: chmod 600 {path}" in result.err


async def test_a_config_file_others_can_read_gets_a_warning_and_is_made_private(cli: Cli) -> None:
    seed(cli.config_dir, {"a": {"url": "https://a.example.com"}, "b": {"url": "https://b.example.com"}}, "a")
    path = cli.config_dir / "config.json"
    path.chmod(0o644)
    result = await cli("switch", "b")
    assert result.code == 0, result.err
    assert result.err == (
        f"Warning: {path} can be read by other users (mode 644); it holds your session tokens. "
        f"Please run: chmod 600 {path}\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the write made it private


async def test_a_symlinked_config_is_written_through_to_its_target(cli: Cli, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir(mode=0o700)
    target = dotfiles / "rack-gateway.json"
    target.write_text(json.dumps({"current": "a", "gateways": {"a": {"url": "https://a"}, "b": {"url": "https://b"}}}))
    target.chmod(0o600)
    cli.config_dir.mkdir(mode=0o700)
    (cli.config_dir / "config.json").symlink_to(target)
    result = await cli("switch", "b")
    assert result.code == 0, result.err
    assert (cli.config_dir / "config.json").is_symlink()
    assert json.loads(target.read_text())["current"] == "b"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not [p for p in dotfiles.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a file to another user")
async def test_a_config_file_another_user_owns_is_refused(cli: Cli) -> None:
    seed(cli.config_dir, {"a": {"url": "https://a.example.com"}}, "a")
    path = cli.config_dir / "config.json"
    os.chown(path, 65534, 65534)
    result = await cli("racks")
    assert result.code == 10
    assert f"config file {path} belongs to another user (uid 65534)" in result.err
    assert "sudo chown" in result.err


# -- item 3: terminal injection ---------------------------------------------------------------------


def hostile_app(body: dict[str, Any], status: int = 200) -> Starlette:
    async def answer(request: Request) -> JSONResponse:
        return JSONResponse(body, status_code=status)

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST", "DELETE"])])


async def test_a_gateway_error_with_escape_sequences_is_shown_escaped(cli: Cli) -> None:
    with running_app(hostile_app({"error": ESC, "message": ESC}, status=403)) as url:
        result = await cli("apps", env={"RACK_GATEWAY_API_TOKEN": "rgw_t", "RACK_GATEWAY_URL": url})
    assert result.code == 4
    assert "\x1b" not in result.out + result.err
    assert "\x07" not in result.out + result.err
    assert SHOWN in result.err


async def test_test_auth_shows_hostile_user_fields_escaped(cli: Cli) -> None:
    me = {"email": ESC, "name": ESC, "roles": [ESC], "permissions": [], "user": {"email": ESC, "roles": [ESC]}}
    with running_app(hostile_app(me)) as url:
        result = await cli("test-auth", env={"RACK_GATEWAY_API_TOKEN": "rgw_t", "RACK_GATEWAY_URL": url})
    assert "\x1b" not in result.out + result.err
    assert "\x07" not in result.out + result.err
    assert SHOWN in result.out + result.err


async def test_rack_names_from_the_config_are_shown_escaped(cli: Cli) -> None:
    seed(cli.config_dir, {ESC: {"url": "https://a.example.com", "token": "t"}}, ESC)
    result = await cli("racks")
    assert result.code == 0, result.err
    assert "\x1b" not in result.out
    assert SHOWN[:40] in result.out  # escaped, then cut to the table's width
    as_json = await cli("racks", "--json")
    assert ESC in json.loads(as_json.out)[0].values()  # JSON output stays exact


async def test_the_loopback_error_parameter_is_shown_escaped(cli: Cli, gateway: RunningGateway) -> None:
    # A page in the user's browser calls the loopback listener with a forged error: the login asks
    # the gateway before giving up, and the forged text never reaches the terminal raw.
    from tests.integration.flowkit import state_of

    class ForgingBrowser:
        answer: Any = None

        async def open(self, url: str) -> bool:
            import httpx

            login = gateway.gateway.login.state(state_of(url))
            assert login is not None
            loopback = login.loopback_uri
            assert loopback is not None

            async def forge() -> None:
                async with httpx.AsyncClient(timeout=20, trust_env=False) as client:
                    self.answer = await client.get(
                        loopback, params={"state": state_of(url), "result": "error", "error": ESC}
                    )

            async with anyio.create_task_group() as tg:
                tg.start_soon(forge)
                # The user really signs in (the forged error came from another page).
                gateway.gateway.complete_browser_login(state_of(url), "developer@example.com")
            return True

    browser = ForgingBrowser()
    result = await cli("login", "dev", gateway.url, browser=browser)
    assert "\x1b" not in result.out + result.err
    assert result.code == 0, result.err
    assert result.out == "Logged in as developer@example.com\n"
    assert "\x1b" not in browser.answer.text  # nor does it reach the page the listener answered
