"""A lock file its holder removes on release: never left behind, never held by two processes."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from rgw.locks import FileLock, same_file


def test_release_with_remove_deletes_the_lock_file_and_the_next_taker_makes_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "login-0123.lock"
    first = FileLock(path)
    assert first.try_acquire()
    waiter = FileLock(path)
    assert not waiter.try_acquire()  # held
    first.release(remove=True)
    assert not path.exists()
    assert waiter.try_acquire()
    assert path.exists()
    waiter.release(remove=True)
    assert list(tmp_path.iterdir()) == []


def test_a_process_that_opened_the_file_before_its_removal_sees_its_lock_guards_nothing(tmp_path: Path) -> None:
    path = tmp_path / "login-0123.lock"
    holder = FileLock(path)
    assert holder.try_acquire()
    stale = os.open(path, os.O_RDWR)  # another process opened it just before the holder removed it
    try:
        holder.release(remove=True)
        fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # it gets the flock of the removed file ...
        assert not same_file(path, stale)  # ... and FileLock.try_acquire would see it is not the lock
        newcomer = FileLock(path)
        assert newcomer.try_acquire()  # the path's file, made afresh: one holder, not two
        assert not FileLock(path).try_acquire()
        newcomer.release(remove=True)
    finally:
        os.close(stale)


def test_release_never_removes_a_file_that_is_no_longer_the_one_it_locked(tmp_path: Path) -> None:
    path = tmp_path / "login-0123.lock"
    holder = FileLock(path)
    assert holder.try_acquire()
    os.unlink(path)
    path.write_text("planted")  # something else now at the path
    holder.release(remove=True)
    assert path.read_text() == "planted"


def test_a_lock_without_remove_keeps_its_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json.lock"
    lock = FileLock(path)
    assert lock.try_acquire()
    lock.release()
    assert path.exists()
