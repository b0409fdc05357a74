"""Planted files in the config directory (issue 20, items 4 and 10): every file rgw opens there is
opened in one place (``rgw.locks.open_private``) and checked on the open file (``fstat``): a regular
file with one link, owned by the user, or it is refused and left as it is; every ``OSError`` about
such a file becomes one ``ConfigError`` naming it, with a hint (``rgw.locks.file_error``).

The read-only file system and the root-owned lock are played by making ``os.open`` fail with their
errno (this tier's one monkeypatch: a read-only mount needs privileges a test run may not have).
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from rgw.config import ConfigStore
from rgw.errors import ConfigError
from rgw.locks import FileLock
from rgw.login.coalesce import RackLoginLock
from rgw.login.listener import serve_listener
from rgw.login.pending import PendingLogins
from rgw.models import LoginStart
from rgw.shared import update_json_file

pytestmark = pytest.mark.anyio

PRECIOUS = b"precious data\n"
STATE, VERIFIER = "S" * 43, "V" * 64


def plant_link(directory: Path, name: str) -> Path:
    """``ln victim <directory>/<name>``: the victim is a file of the user's outside the directory."""
    directory.mkdir(mode=0o700, exist_ok=True)
    victim = directory.parent / f"victim-{name}"
    victim.write_bytes(PRECIOUS)
    os.link(victim, directory / name)
    return victim


# -- item 4: hard links -------------------------------------------------------------------------


async def test_a_hard_linked_login_lock_is_refused_and_its_victim_left_as_it_is(tmp_path: Path) -> None:
    directory = tmp_path / "cfg"
    lock = RackLoginLock(directory, "prod")
    victim = plant_link(directory, lock.path.name)
    with pytest.raises(ConfigError) as info:
        lock.try_acquire()
    assert info.value.message == (f"{lock.path} is one of 2 hard links to the same file; rack-gateway will not use it")
    assert info.value.hint == f"Remove it (rm {lock.path}); rack-gateway creates its lock files itself."
    await lock.release()
    assert victim.read_bytes() == PRECIOUS
    assert lock.path.exists()  # left as it is


async def test_a_hard_linked_config_lock_is_refused_before_the_config_is_touched(tmp_path: Path) -> None:
    directory = tmp_path / "cfg"
    store = ConfigStore(directory, lock_timeout=1)
    victim = plant_link(directory, "config.json.lock")
    with pytest.raises(ConfigError, match=r"config\.json\.lock is one of 2 hard links"):
        await store.update(lambda data: data.raw.update(current="x"))
    assert victim.read_bytes() == PRECIOUS
    assert not store.path.exists()


@pytest.mark.parametrize("name", ["rate-budget.json", "mfa-attempts.json", "pending-0123456789abcdef.json"])
def test_a_hard_linked_state_file_is_neither_read_nor_written(tmp_path: Path, name: str) -> None:
    directory = tmp_path / "cfg"
    victim = plant_link(directory, name)
    victim.write_bytes(b'{"kept": 1}')
    seen: list[dict[str, Any]] = []
    with pytest.raises(OSError, match="is one of 2 hard links") as info:
        update_json_file(directory / name, lambda data: seen.append(dict(data)) or data.clear())
    assert info.value.errno == errno.EMLINK
    assert seen == []  # not even read
    assert victim.read_bytes() == b'{"kept": 1}'


def test_a_lock_file_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    path = tmp_path / "config.json.lock"
    path.write_bytes(b"")
    os.chown(path, 65534, 65534)
    with pytest.raises(OSError, match=r"belongs to another user \(uid 65534\)"):
        FileLock(path).try_acquire()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_lock_file_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "login-0123456789abcdef.lock"
    os.mkfifo(path, 0o600) if kind == "fifo" else path.mkdir()
    lock = RackLoginLock(tmp_path, "x")
    lock.path = path
    lock._lock = FileLock(path)
    with pytest.raises(ConfigError) as info:
        lock.try_acquire()
    said = "is not a regular file" if kind == "fifo" else "is a directory"
    assert info.value.message == f"{path} {said}; rack-gateway will not use it"
    assert "Remove it" in info.value.hint


async def test_a_config_file_that_is_a_fifo_is_an_error_not_a_hang(tmp_path: Path) -> None:
    directory = tmp_path / "cfg"
    directory.mkdir(mode=0o700)
    os.mkfifo(directory / "config.json", 0o600)
    with anyio.fail_after(10), pytest.raises(ConfigError) as info:
        await ConfigStore(directory).read()
    assert info.value.message == f"{directory / 'config.json'} is not a regular file; rack-gateway will not use it"


async def test_a_hard_linked_config_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    directory = tmp_path / "cfg"
    victim = plant_link(directory, "config.json")
    victim.write_text(json.dumps({"current": "a", "gateways": {"a": {"url": "https://a.example.com"}}}))
    before = victim.read_bytes()
    store = ConfigStore(directory, lock_timeout=1)
    for attempt in (store.read(), store.update(lambda data: data.raw.update(current="b"))):
        with pytest.raises(ConfigError, match=r"config\.json is one of 2 hard links") as info:
            await attempt
        assert "cp " in info.value.hint
    assert victim.read_bytes() == before
    assert os.stat(victim).st_nlink == 2


# -- item 10: odd files and a config directory that cannot be written --------------------------


def failing_open(monkeypatch: pytest.MonkeyPatch, code: int, name_part: str) -> None:
    """``os.open`` of a path containing ``name_part`` fails with ``code`` (a read-only mount, root's file)."""
    real = os.open

    def fake(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if name_part in os.fspath(path):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", fake)


@pytest.mark.parametrize(
    ("code", "said", "hint"),
    [
        (errno.EROFS, "Read-only file system", "read-only file system"),
        (errno.EACCES, "Permission denied", "ls -l"),
        (errno.EPERM, "Operation not permitted", "ls -l"),
    ],
)
async def test_a_lock_that_cannot_be_opened_is_a_config_error_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, said: str, hint: str
) -> None:
    lock = RackLoginLock(tmp_path, "prod")
    failing_open(monkeypatch, code, "login-")
    with pytest.raises(ConfigError) as info:
        lock.try_acquire()
    assert info.value.message == f"cannot lock {lock.path}: {said}"
    assert hint in info.value.hint
    assert info.value.exit_code == 10


async def test_a_config_that_cannot_be_written_is_a_config_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConfigStore(tmp_path / "cfg")
    await store.ensure_directory()
    failing_open(monkeypatch, errno.EROFS, ".tmp")
    with pytest.raises(ConfigError) as info:
        await store.update(lambda data: data.raw.update(current="x"))
    assert info.value.message.startswith(f"cannot write config file {store.path}: Read-only file system")
    assert "read-only file system" in info.value.hint


async def test_a_pending_file_that_is_a_directory_is_left_and_nothing_raises(tmp_path: Path) -> None:
    pending = PendingLogins(tmp_path, "prod", "https://gw.example.com")
    pending.path.mkdir()
    assert await pending.load() is None
    await pending.delete()  # a directory is not ours to remove: left as it is, no IsADirectoryError
    assert pending.path.is_dir()


async def test_a_pending_listener_port_out_of_range_is_dropped(tmp_path: Path) -> None:
    pending = PendingLogins(tmp_path, "prod", "https://gw.example.com")
    record = {
        "format": 1,
        "rack": "prod",
        "url": "https://gw.example.com",
        "auth_url": "https://gw.example.com/in?state=x",
        "state": STATE,
        "code_verifier": VERIFIER,
        "loopback": True,
        "started_at": time.time(),
        "listener": "http://127.0.0.1:99999/" + "C" * 22,
    }
    pending.path.write_text(json.dumps(record))
    pending.path.chmod(0o600)
    found = await pending.load()
    assert found is not None
    assert found.start == LoginStart(record["auth_url"], STATE, VERIFIER, loopback=True)
    assert found.listener is None


async def test_a_listener_told_of_a_port_out_of_range_listens_on_a_random_one() -> None:
    async with anyio.create_task_group() as tg:
        listener = await serve_listener(tg, previous=["http://127.0.0.1:99999/" + "C" * 22, "http://127.0.0.1:0x1/x"])
        assert listener.port is not None
        assert 0 < listener.port <= 65535
        tg.cancel_scope.cancel()
