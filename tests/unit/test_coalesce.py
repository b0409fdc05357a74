"""rgw.login.coalesce.RackLoginLock: one browser login per rack across processes, and who holds it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rgw.errors import ConfigError
from rgw.login.coalesce import RackLoginLock

pytestmark = pytest.mark.anyio


async def test_one_holder_per_rack_and_it_says_who_and_where(tmp_path: Path) -> None:
    first = RackLoginLock(tmp_path, "prod", "https://gw.example.com")
    second = RackLoginLock(tmp_path, "prod", "https://gw.example.com")
    assert first.try_acquire()
    assert first.try_acquire()  # already ours
    assert not second.try_acquire()
    assert await second.holder() == (None, None, None)  # nothing said yet
    await first.publish()
    assert await second.holder() == (os.getpid(), "https://gw.example.com", None)  # the URL first
    await first.publish("https://gw.example.com/signin?state=x")
    assert await second.holder() == (os.getpid(), "https://gw.example.com", "https://gw.example.com/signin?state=x")
    await first.release()
    assert await second.holder() == (None, None, None)  # released: nothing stale is said
    assert second.try_acquire()
    await second.release()


async def test_racks_have_locks_of_their_own(tmp_path: Path) -> None:
    prod, staging = RackLoginLock(tmp_path, "prod"), RackLoginLock(tmp_path, "staging")
    assert prod.path != staging.path
    assert prod.path.name.startswith("login-")
    assert "prod" not in prod.path.name  # a rack name never becomes part of a file name
    assert prod.try_acquire()
    assert staging.try_acquire()
    await prod.release()
    await staging.release()


async def test_a_holder_record_that_is_not_ours_is_read_as_unknown(tmp_path: Path) -> None:
    lock = RackLoginLock(tmp_path, "prod")
    lock.path.write_text('{"pid": "4242", "auth_url": 7}')
    assert await lock.holder() == (None, None, None)
    lock.path.write_text('{"pid": true, "url": ["x"], "auth_url": ""}')
    assert await lock.holder() == (None, None, None)
    lock.path.write_text('{"pid": -1, "url": "https://gw.example.com"}')  # -1: every process, to kill()
    assert await lock.holder() == (None, "https://gw.example.com", None)
    lock.path.write_text("garbage")
    assert await lock.holder() == (None, None, None)


async def test_a_symlink_as_lock_file_is_refused_and_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    lock = RackLoginLock(tmp_path, "prod")
    lock.path.symlink_to(victim)
    with pytest.raises(ConfigError, match="is a symbolic link; rack-gateway will not follow it"):
        lock.try_acquire()
    assert victim.read_text() == "precious"


async def test_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot lock"):
        RackLoginLock(tmp_path / "nope", "prod").try_acquire()
