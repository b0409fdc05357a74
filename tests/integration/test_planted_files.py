"""Planted files and odd directories, through the CLI (issue 20, items 4 and 10).

``ln victim cfg/<file>`` for every file rgw writes in its config directory: before, one login left
the victims truncated or overwritten.  Now a hard link (or a FIFO, a directory, another user's file)
is refused with a clear error (a lock: the command stops, exit 10) or a warning (a file whose loss
only costs a safety net: the request budget, the pending login), and the victim stays as it was.
A config directory on a read-only mount (a real one, when this machine lets the test make one) gives
the same kind of error as ``switch`` always did, never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgw.testing import RunningGateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

PRECIOUS = b"precious data\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plant_link(config: Path, name: str) -> Path:
    config.mkdir(mode=0o700, exist_ok=True)
    victim = config.parent / f"victim-{name}"
    victim.write_bytes(PRECIOUS)
    os.link(victim, config / name)
    return victim


@pytest.mark.parametrize("name", ["config.json.lock", "login-{rack}.lock"])
async def test_a_hard_linked_lock_file_stops_the_login_and_its_victim_is_kept(
    cli: Cli, gateway: RunningGateway, name: str
) -> None:
    name = name.format(rack=digest("dev"))
    victim = plant_link(cli.config_dir, name)
    result = await cli("login", "dev", gateway.url)
    path = cli.config_dir / name
    assert result.code == 10, result.err
    assert result.err == (  # said before the browser is opened: no sign-in for a session it could not save
        f"Error: {path} is one of 2 hard links to the same file; rack-gateway will not use it\n"
        f"Remove it (rm {path}); rack-gateway creates its lock files itself.\n"
    )
    assert victim.read_bytes() == PRECIOUS
    assert os.stat(victim).st_nlink == 2  # left as it is


@pytest.mark.parametrize("name", ["rate-budget.json", "pending-{pending}.json"])
async def test_a_hard_linked_state_file_is_warned_about_and_its_victim_is_kept(
    cli: Cli, gateway: RunningGateway, name: str
) -> None:
    name = name.format(pending=digest(f"dev\0{gateway.url}"))
    victim = plant_link(cli.config_dir, name)
    result = await cli("login", "dev", gateway.url)
    assert result.code == 0, result.err
    assert result.out == "Logged in as developer@example.com\n"
    warnings = [line for line in result.err.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1, result.err
    assert f"{cli.config_dir / name}" in warnings[0]
    assert "is one of 2 hard links to the same file" in warnings[0]
    assert victim.read_bytes() == PRECIOUS
    assert os.stat(victim).st_nlink == 2


async def test_a_pending_file_that_is_a_directory_does_not_stop_the_login(cli: Cli, gateway: RunningGateway) -> None:
    cli.config_dir.mkdir(mode=0o700)
    planted = cli.config_dir / f"pending-{digest(f'dev{chr(0)}{gateway.url}')}.json"
    planted.mkdir()
    result = await cli("login", "dev", gateway.url)
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert (
        f"Warning: {planted} is a directory; rack-gateway will not use it: an interrupted login of dev cannot be "
        f"taken up again. Remove it (rm -r {planted}); rack-gateway creates its state files itself.\n"
    ) in result.err
    assert planted.is_dir()


async def test_a_pending_listener_on_port_99999_is_ignored(cli: Cli, gateway: RunningGateway) -> None:
    cli.config_dir.mkdir(mode=0o700)
    path = cli.config_dir / f"pending-{digest(f'dev{chr(0)}{gateway.url}')}.json"
    record = {
        "format": 1,
        "rack": "dev",
        "url": gateway.url,
        "auth_url": f"{gateway.url}/oauth/authorize?state=x",
        "state": "S" * 43,
        "code_verifier": "V" * 64,
        "loopback": True,
        "started_at": time.time(),
        "listener": "http://127.0.0.1:99999/" + "C" * 22,
    }
    path.write_text(json.dumps(record))
    path.chmod(0o600)
    result = await cli("login", "dev", gateway.url)
    assert result.code == 0, result.err
    assert result.out == "Logged in as developer@example.com\n"
    assert "Traceback" not in result.err


async def test_a_config_file_that_is_a_fifo_is_an_error_not_a_hang(cli: Cli) -> None:
    cli.config_dir.mkdir(mode=0o700)
    os.mkfifo(cli.config_dir / "config.json", 0o600)
    result = await cli("racks")
    assert result.code == 10
    path = cli.config_dir / "config.json"
    assert result.err == (
        f"Error: {path} is not a regular file; rack-gateway will not use it\n"
        f"Move it aside (mv {path} {path}.old); rack-gateway will not change it.\n"
    )


async def test_a_file_where_the_config_directory_should_be_is_a_config_error(cli: Cli, gateway: RunningGateway) -> None:
    cli.config_dir.write_text("not a directory")
    for args in (("racks",), ("login", "dev", gateway.url), ("switch", "dev")):
        result = await cli(*args)
        assert result.code == 10, (args, result.err)
        assert result.err.startswith("Error: "), result.err
        assert str(cli.config_dir) in result.err
        assert "Traceback" not in result.err
    assert cli.config_dir.read_text() == "not a directory"


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` bind-mounted read-only onto itself (needs root and a kernel that allows it)."""
    try:
        subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot bind-mount here (needs root and mount privileges)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True, capture_output=True)


async def test_a_read_only_config_directory_is_a_config_error_with_a_hint(cli: Cli, gateway: RunningGateway) -> None:
    cli.config_dir.mkdir(mode=0o700)
    config = {"current": "dev", "gateways": {"dev": {"url": gateway.url}}}
    (cli.config_dir / "config.json").write_text(json.dumps(config))
    (cli.config_dir / "config.json").chmod(0o600)
    with read_only(cli.config_dir):
        for args in (("login", "dev", gateway.url), ("login", "dev"), ("switch", "dev")):
            result = await cli(*args)
            assert result.code == 10, (args, result.err)
            lines = result.err.splitlines()
            assert len(lines) == 2, result.err
            assert lines[0].startswith(f"Error: cannot lock {cli.config_dir}/"), result.err
            assert lines[0].endswith(": Read-only file system")
            assert lines[1] == (
                f"{cli.config_dir} is on a read-only file system: use a config directory that can be written "
                "(--config DIR, or GATEWAY_CLI_CONFIG_DIR)."
            )
