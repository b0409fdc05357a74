"""Exclusive locks between processes (an ``flock`` on a file in the config directory), and the one
place rgw opens a file there (``open_private``) and words what went wrong (``file_error``).

Why not ``filelock``: it opens the lock file without ``O_NOFOLLOW`` and truncates it, so a symlink
planted in the config directory (``config.json.lock`` -> ``~/.bashrc``) would have that file
truncated by the next login, and a symlink loop gives a traceback.  This is the same ``flock``
with the file opened ``O_NOFOLLOW | O_CLOEXEC``, 0600, never truncated on open.  Every attempt is
non-blocking (``LOCK_NB``), so an async caller polls with ``anyio.sleep`` and Ctrl-C interrupts a
wait at once; the lock dies with its process.

A file planted in the config directory is never written through: every open is ``O_NOFOLLOW``
(never a symlink's target) and ``O_NONBLOCK`` (a FIFO cannot hang it), then checked on the open
file (``fstat``): a regular file with one link (a hard link would make a write land in another
file), owned by the user.  Anything else is ``UnsafeFile`` and is left as it is.  ``file_error``
turns any ``OSError`` about such a file into the ``ConfigError`` the user sees (the file named,
with a hint: a read-only file system, a file of root's, a directory in a file's place).

The holder writes who it is into the lock file itself (PID and command name, never an argument:
arguments can carry tokens), so a process that cannot get the lock can say who has it, and whether
that process is still alive.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import sys
import time
from pathlib import Path

from rgw.errors import ConfigError

#: Longest holder record read back (it is a few dozen bytes).
_RECORD_MAX = 4096
#: Every open in the config directory: never through a symlink, never blocking on a FIFO, never a
#: controlling terminal, never inherited by a child process.
_SAFE_OPEN = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


class UnsafeFile(OSError):
    """A file rgw will not use (not a regular file, more than one link, another user's); left as it is."""

    def __init__(self, code: int, reason: str, path: Path, hint: str | None = None) -> None:
        super().__init__(code, reason, str(path))
        self.reason = reason
        self.hint = hint


def check_private(path: Path, info: os.stat_result) -> None:
    """Raise ``UnsafeFile`` unless ``info`` (of ``path``, opened) is a regular file of ours with one link."""
    if not stat.S_ISREG(info.st_mode):
        code = errno.EISDIR if stat.S_ISDIR(info.st_mode) else errno.EINVAL
        raise UnsafeFile(code, "is a directory" if code == errno.EISDIR else "is not a regular file", path)
    if info.st_nlink != 1:
        reason = f"is one of {info.st_nlink} hard links to the same file"
        raise UnsafeFile(errno.EMLINK, reason, path)
    if info.st_uid != os.getuid():
        hint = f"Remove it, or if it is yours: sudo chown {os.getuid()} {path}"
        raise UnsafeFile(errno.EPERM, f"belongs to another user (uid {info.st_uid})", path, hint)


def open_private(path: Path, flags: int) -> int:
    """Open ``path`` in the config directory (0600 when created) and check it (``check_private``).

    The one way rgw opens a file there.  Raises ``OSError`` (``UnsafeFile``: refused, left as it is).
    """
    fd = os.open(path, flags | _SAFE_OPEN, 0o600)
    try:
        check_private(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def holder_record(**extra: object) -> bytes:
    """This process, as the lock file says it: PID and command name, plus ``extra`` (a sign-in URL)."""
    command = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "rack-gateway"
    if command in ("__main__.py", "-c", "-m", ""):
        command = "rack-gateway"
    return json.dumps({"pid": os.getpid(), "command": command[:64], **extra}).encode()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs; a number that cannot be a process's (0, negative: a process
    group to ``kill``; past 2**31: an overflow) is not one."""
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


#: How often ``try_acquire`` opens a lock file afresh that was removed while it was being locked.
_REOPENS = 20


def same_file(path: Path, fd: int) -> bool:
    """Whether ``path`` (not followed) is still the file open as ``fd``."""
    try:
        there = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


class FileLock:
    """One exclusive ``flock`` on ``path``: the only place rgw opens, locks and unlocks a file.

    ``try_acquire`` never blocks; ``acquire_within`` (blocking: a worker thread's) tries for a while.
    A lock file (``names_holder``) says who holds it and is emptied on release; a state file locked
    for its own read-modify-write (``rgw.shared``) keeps its content.  Failing to open raises
    ``OSError`` (``ELOOP``: a symlink in its place, never followed; ``UnsafeFile``: a hard link, a
    FIFO, another user's file, never written); ``file_error`` words it.
    """

    def __init__(self, path: Path, *, names_holder: bool = True) -> None:
        self.path = path
        self.names_holder = names_holder
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def fd(self) -> int:
        """The open, locked file (the caller reads and writes it in place)."""
        if self._fd is None:
            raise RuntimeError(f"{self.path} is not locked")
        return self._fd

    def try_acquire(self) -> bool:
        """Take the lock if it is free.  Raises ``FileNotFoundError`` when the directory is missing.

        A lock file may be removed by its holder (``release(remove=True)``): a process that opened it
        just before finds, once it has the ``flock``, that the path no longer leads to the file it
        locked, and opens the path afresh; a lock on a removed file guards nothing.
        """
        if self._fd is not None:
            return True
        for _ in range(_REOPENS):
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                current = same_file(self.path, fd)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            if current:
                self._fd = fd
                return True
            os.close(fd)  # removed (and perhaps made again) since we opened it: try the path again
        return False

    def acquire_within(self, patience: float) -> None:
        """Blocking: try every millisecond for ``patience`` seconds; ``OSError(EWOULDBLOCK)`` after that."""
        give_up = time.monotonic() + patience
        while not self.try_acquire():
            if time.monotonic() > give_up:
                raise OSError(errno.EWOULDBLOCK, f"{self.path.name} stays locked")
            time.sleep(0.001)

    def write_holder(self, record: bytes) -> None:
        """Say who holds the lock (blocking: call it where blocking is fine)."""
        if self._fd is None or not self.names_holder:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, record, 0)

    def release(self, *, remove: bool = False) -> None:
        """Let go of the lock; with ``remove``, delete the lock file first, while it is still held.

        Removing it under the lock is what makes removal safe: only the holder ever removes it, and a
        process that opened the old file and locks it afterwards sees it is no longer at the path
        (``try_acquire``), so two processes never both think they hold the lock.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if remove:
            with contextlib.suppress(OSError):
                if same_file(self.path, fd):
                    os.unlink(self.path)
        elif self.names_holder:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # nobody holds it: say nothing stale
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def file_error(
    path: Path, exc: OSError, doing: str = "lock", *, holds_data: bool = False, kind: str = "lock files"
) -> ConfigError:
    """The one place an ``OSError`` about a file in the config directory becomes what the user sees.

    ``doing``: what rgw was doing (``lock``, ``read config file``, ...).  ``holds_data``: the file
    keeps what the user cannot rebuild (``config.json``), so the hint never says to remove it;
    ``kind``: what rgw calls the file in a hint that does (``lock files``, ``state files``).
    """
    if holds_data:
        aside = f"Move it aside (mv {path} {path}.old); rack-gateway will not change it."
    else:
        aside = f"Remove it (rm {path}); rack-gateway creates its {kind} itself."
    if exc.errno == errno.ELOOP:
        return ConfigError(f"{path} is a symbolic link; rack-gateway will not follow it", hint=aside)
    if isinstance(exc, UnsafeFile) or exc.errno == errno.EISDIR:
        reason = exc.reason if isinstance(exc, UnsafeFile) else "is a directory"
        hint = exc.hint if isinstance(exc, UnsafeFile) else None
        if exc.errno == errno.EISDIR and not holds_data:
            aside = f"Remove it (rm -r {path}); rack-gateway creates its {kind} itself."
        elif exc.errno == errno.EMLINK and holds_data:
            aside = f"Give it a name of its own: cp {path} {path}.new && mv {path}.new {path}"
        return ConfigError(f"{path} {reason}; rack-gateway will not use it", hint=hint or aside)
    text = f"cannot {doing} {path}: {exc.strerror or exc}"
    if exc.errno == errno.EROFS:
        return ConfigError(text, hint=f"{path.parent} is on a read-only file system: {_ELSEWHERE}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        hint = f"Check who owns it (ls -ld {path.parent} {path}): rack-gateway reads and writes it as you."
        return ConfigError(text, hint=hint)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ConfigError(text, hint="Free some disk space (or quota), then run it again.")
    return ConfigError(text)


_ELSEWHERE = "use a config directory that can be written (--config DIR, or GATEWAY_CLI_CONFIG_DIR)."


def read_holder(path: Path) -> dict[str, object] | None:
    """What the holder of ``path`` wrote about itself (None: nothing usable).  Blocking."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.pread(fd, _RECORD_MAX, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):  # another process's word: garbage, or nested too deeply
        return None
    return record if isinstance(record, dict) else None


def describe_holder(record: dict[str, object] | None) -> str:
    """``process 4242 (rack-gateway)``, ``process 4242 (rack-gateway, no longer running)``, or vaguer."""
    pid = record.get("pid") if record is not None else None
    if record is None or not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return "another process"
    command = record.get("command")
    name = command if isinstance(command, str) and command.isprintable() else "rack-gateway"
    state = "" if pid_alive(pid) else ", no longer running"
    return f"process {pid} ({name[:64]}{state})"
