"""Exclusive locks between processes: an ``flock`` on a file in the config directory.

Why not ``filelock``: it opens the lock file without ``O_NOFOLLOW`` and truncates it, so a symlink
planted in the config directory (``config.json.lock`` -> ``~/.bashrc``) would have that file
truncated by the next login, and a symlink loop gives a traceback.  This is the same ``flock``
with the file opened ``O_NOFOLLOW | O_CLOEXEC``, 0600, never truncated on open.  Every attempt is
non-blocking (``LOCK_NB``), so an async caller polls with ``anyio.sleep`` and Ctrl-C interrupts a
wait at once; the lock dies with its process.

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
import sys
import time
from pathlib import Path

from rgw.errors import ConfigError

#: Longest holder record read back (it is a few dozen bytes).
_RECORD_MAX = 4096


def holder_record(**extra: object) -> bytes:
    """This process, as the lock file says it: PID and command name, plus ``extra`` (a sign-in URL)."""
    command = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "rack-gateway"
    if command in ("__main__.py", "-c", "-m", ""):
        command = "rack-gateway"
    return json.dumps({"pid": os.getpid(), "command": command[:64], **extra}).encode()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


class FileLock:
    """One exclusive ``flock`` on ``path``: the only place rgw opens, locks and unlocks a file.

    ``try_acquire`` never blocks; ``acquire_within`` (blocking: a worker thread's) tries for a while.
    A lock file (``names_holder``) says who holds it and is emptied on release; a state file locked
    for its own read-modify-write (``rgw.shared``) keeps its content.  Failing to open raises
    ``OSError`` (``ELOOP``: a symlink in its place, never followed); ``lock_error`` words it.
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
        """Take the lock if it is free.  Raises ``FileNotFoundError`` when the directory is missing."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

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

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self.names_holder:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # nobody holds it: say nothing stale
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def lock_error(path: Path, exc: OSError) -> ConfigError:
    """A lock file that cannot be opened or locked, said so the user can fix it."""
    if exc.errno == errno.ELOOP:
        return ConfigError(
            f"{path} is a symbolic link; rack-gateway will not follow it",
            hint=f"Remove it (rm {path}); rack-gateway creates its lock files itself.",
        )
    return ConfigError(f"cannot lock {path}: {exc.strerror or exc}")


def read_holder(path: Path) -> dict[str, object] | None:
    """What the holder of ``path`` wrote about itself (None: nothing usable).  Blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
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
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def describe_holder(record: dict[str, object] | None) -> str:
    """``process 4242 (rack-gateway)``, ``process 4242 (rack-gateway, no longer running)``, or vaguer."""
    if record is None or not isinstance(record.get("pid"), int):
        return "another process"
    pid = record["pid"]
    assert isinstance(pid, int)
    command = record.get("command")
    name = command if isinstance(command, str) and command.isprintable() else "rack-gateway"
    state = "" if pid_alive(pid) else ", no longer running"
    return f"process {pid} ({name[:64]}{state})"
