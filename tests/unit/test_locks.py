"""rgw.locks: the one opener and lock of config-directory files, and how their failures are worded."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rgw.locks import (
    FileLock,
    UnsafeFile,
    check_private,
    describe_holder,
    file_error,
    holder_record,
    open_private,
    pid_alive,
    read_holder,
)

ELSEWHERE = "use a config directory that can be written (--config DIR, or GATEWAY_CLI_CONFIG_DIR)."


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize(
    ("exc", "holds_data", "message", "hint"),
    [
        (
            OSError(errno.ELOOP, "loop"),
            False,
            "{p} is a symbolic link; rack-gateway will not follow it",
            "Remove it (rm {p}); rack-gateway creates its lock files itself.",
        ),
        (
            OSError(errno.ELOOP, "loop"),
            True,
            "{p} is a symbolic link; rack-gateway will not follow it",
            "Move it aside (mv {p} {p}.old); rack-gateway will not change it.",
        ),
        (
            OSError(errno.EISDIR, "dir"),
            False,
            "{p} is a directory; rack-gateway will not use it",
            "Remove it (rm -r {p}); rack-gateway creates its lock files itself.",
        ),
        (
            OSError(errno.EISDIR, "dir"),
            True,
            "{p} is a directory; rack-gateway will not use it",
            "Move it aside (mv {p} {p}.old); rack-gateway will not change it.",
        ),
        (
            UnsafeFile(errno.EMLINK, "is one of 2 hard links to the same file", Path("/x")),
            True,
            "{p} is one of 2 hard links to the same file; rack-gateway will not use it",
            "Give it a name of its own: cp {p} {p}.new && mv {p}.new {p}",
        ),
        (
            UnsafeFile(errno.EMLINK, "is one of 2 hard links to the same file", Path("/x")),
            False,
            "{p} is one of 2 hard links to the same file; rack-gateway will not use it",
            "Remove it (rm {p}); rack-gateway creates its lock files itself.",
        ),
        (
            UnsafeFile(errno.EPERM, "belongs to another user (uid 7)", Path("/x"), "chown it"),
            True,
            "{p} belongs to another user (uid 7); rack-gateway will not use it",
            "chown it",
        ),
        (
            OSError(errno.EROFS, "Read-only file system"),
            False,
            "cannot lock {p}: Read-only file system",
            "{d} is on a read-only file system: " + ELSEWHERE,
        ),
        (
            OSError(errno.EACCES, "Permission denied"),
            False,
            "cannot lock {p}: Permission denied",
            "Check who owns it (ls -ld {d} {p}): rack-gateway reads and writes it as you.",
        ),
        (
            OSError(errno.EPERM, "Operation not permitted"),
            False,
            "cannot lock {p}: Operation not permitted",
            "Check who owns it (ls -ld {d} {p}): rack-gateway reads and writes it as you.",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            False,
            "cannot lock {p}: No space left on device",
            "Free some disk space (or quota), then run it again.",
        ),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded"),
            False,
            "cannot lock {p}: Disk quota exceeded",
            "Free some disk space (or quota), then run it again.",
        ),
        (OSError("odd"), False, "cannot lock {p}: odd", None),
    ],
)
def test_each_file_failure_is_worded_with_what_to_do_and_never_says_to_remove_data(
    tmp_path: Path, exc: OSError, holds_data: bool, message: str, hint: str | None
) -> None:
    path = tmp_path / "file.json"
    error = file_error(path, exc, holds_data=holds_data)
    assert error.message == message.format(p=path, d=tmp_path)
    if hint is None:
        assert error.hint == error.default_hint
    else:
        assert error.hint == hint.format(p=path, d=tmp_path)


def test_a_file_failure_names_what_rgw_was_doing_and_its_kind_of_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    assert file_error(path, OSError(errno.EIO, "I/O error"), "read").message == f"cannot read {path}: I/O error"
    assert file_error(path, OSError(errno.ELOOP, "x"), kind="state files").hint == (
        f"Remove it (rm {path}); rack-gateway creates its state files itself."
    )


def test_only_a_regular_file_of_ours_with_one_link_is_opened(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(UnsafeFile) as directory:
        open_private(tmp_path / "dir", os.O_RDONLY)
    assert (directory.value.errno, directory.value.reason) == (errno.EISDIR, "is a directory")
    assert directory.value.filename == str(tmp_path / "dir")  # the error names the file
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnsafeFile) as fifo:
        open_private(tmp_path / "fifo", os.O_RDONLY)
    assert (fifo.value.errno, fifo.value.reason) == (errno.EINVAL, "is not a regular file")
    assert fifo.value.filename == str(tmp_path / "fifo")
    (tmp_path / "one").write_text("x")
    os.link(tmp_path / "one", tmp_path / "two")
    with pytest.raises(UnsafeFile) as linked:
        open_private(tmp_path / "one", os.O_RDONLY)
    assert (linked.value.errno, linked.value.reason) == (errno.EMLINK, "is one of 2 hard links to the same file")
    assert linked.value.filename == str(tmp_path / "one")
    fd = open_private(tmp_path / "new", os.O_RDWR | os.O_CREAT)
    os.close(fd)
    assert os.stat(tmp_path / "new").st_mode & 0o777 == 0o600


def test_another_user_s_file_is_refused_with_the_chown_hint(tmp_path: Path) -> None:
    path = tmp_path / "theirs"
    path.write_text("x")
    info = os.stat(path)
    other = os.stat_result((info.st_mode, info.st_ino, info.st_dev, 1, os.getuid() + 1, info.st_gid, *info[6:10]))
    with pytest.raises(UnsafeFile) as caught:
        check_private(path, other)
    assert caught.value.errno == errno.EPERM
    assert caught.value.filename == str(path)
    assert caught.value.reason == f"belongs to another user (uid {os.getuid() + 1})"
    assert caught.value.hint == f"Remove it, or if it is yours: sudo chown {os.getuid()} {path}"
    check_private(path, info)  # ours, one link: fine


def test_pid_alive_takes_only_numbers_that_can_be_processes() -> None:
    assert pid_alive(os.getpid())
    assert pid_alive(1)  # init, in any system or container
    assert not pid_alive(0)
    assert not pid_alive(-1)
    assert not pid_alive(2**31)
    assert not pid_alive(_dead_pid())


def test_a_holder_is_described_by_pid_and_command_only_when_they_can_be_trusted() -> None:
    me = os.getpid()
    assert describe_holder({"pid": me, "command": "rack-gateway"}) == f"process {me} (rack-gateway)"
    assert describe_holder({"pid": me, "command": "x" * 70}) == f"process {me} ({'x' * 64})"
    assert describe_holder({"pid": me, "command": "evil\x1b[2J"}) == f"process {me} (rack-gateway)"
    assert describe_holder({"pid": me}) == f"process {me} (rack-gateway)"
    dead = _dead_pid()
    assert describe_holder({"pid": dead, "command": "rgw"}) == f"process {dead} (rgw, no longer running)"
    for record in (None, {}, {"pid": True}, {"pid": "12"}, {"pid": 0}, {"pid": -5}, {"pid": 2**31}):
        assert describe_holder(record) == "another process"
    assert describe_holder({"pid": 1, "command": "init"}).startswith("process 1 (")


def test_the_holder_record_names_this_process_as_the_user_knows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for argv0, command in (
        ("/usr/bin/rack-gateway", "rack-gateway"),
        ("__main__.py", "rack-gateway"),
        ("-c", "rack-gateway"),
        ("-m", "rack-gateway"),
        ("", "rack-gateway"),
        ("/x/" + "y" * 80, "y" * 64),
    ):
        monkeypatch.setattr(sys, "argv", [argv0])
        assert json.loads(holder_record(url="u")) == {"pid": os.getpid(), "command": command, "url": "u"}
    monkeypatch.setattr(sys, "argv", [])
    assert json.loads(holder_record())["command"] == "rack-gateway"


def test_a_lock_file_names_its_holder_while_held_and_nothing_after(tmp_path: Path) -> None:
    path = tmp_path / "login.lock"
    lock = FileLock(path)
    assert not lock.held
    with pytest.raises(RuntimeError, match="is not locked"):
        _ = lock.fd
    assert lock.try_acquire()
    assert lock.try_acquire()  # already ours
    assert lock.held
    lock.write_holder(b'{"pid": 1}')
    assert read_holder(path) == {"pid": 1}
    other = FileLock(path)
    assert not other.try_acquire()
    with pytest.raises(OSError, match=r"login\.lock stays locked") as waited:
        other.acquire_within(0.01)
    assert waited.value.errno == errno.EWOULDBLOCK
    lock.release()
    lock.release()  # twice: nothing
    assert not lock.held
    assert path.read_bytes() == b""
    assert other.try_acquire()
    other.release()


def test_a_state_file_keeps_its_content_when_locked_and_released(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"k": 1}')
    lock = FileLock(path, names_holder=False)
    lock.acquire_within(1.0)
    lock.write_holder(b"not written")
    lock.release()
    assert path.read_text() == '{"k": 1}'


def test_a_holder_record_that_cannot_be_read_is_none(tmp_path: Path) -> None:
    assert read_holder(tmp_path / "missing") is None
    for content in (b"[1]", b"garbage", b"[" * 100_000):
        (tmp_path / "lock").write_bytes(content)
        assert read_holder(tmp_path / "lock") is None
    (tmp_path / "lock").write_bytes(b'{"pid": 5, "pad": "' + b"p" * 5000 + b'"}')
    assert read_holder(tmp_path / "lock") is None  # only the first 4 KiB are read


def test_acquire_within_waits_for_a_lock_released_meanwhile(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "state.json"
    held = FileLock(path, names_holder=False)
    assert held.try_acquire()
    releaser = threading.Timer(0.05, held.release)
    releaser.start()
    waiting = FileLock(path, names_holder=False)
    try:
        waiting.acquire_within(30.0)  # returns as soon as the holder lets go
        assert waiting.held
    finally:
        releaser.join()
        waiting.release()
