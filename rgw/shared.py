"""Small JSON state files in the config directory, shared by every ``rack-gateway`` process.

``update_json_file`` is the whole mechanism: open with ``O_NOFOLLOW`` (a symlink planted in the
config directory is never followed), take an ``flock`` for the few microseconds of a read-modify-
write (tried without blocking, for at most ``patience`` seconds), and write the result back in
place.  It runs in a worker thread; no lock is ever held while anybody waits for anything else.
Content that is not a JSON object (a crash mid-write, garbage) counts as empty: these files hold
pacing and safety state, never anything that cannot be rebuilt.  Used by the request budget
(``rgw.client.budget``) and the MFA attempt ledger (``rgw.login.ledger``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: How long the file's lock is tried before the caller falls back to state of its own.
LOCK_PATIENCE = 2.0
_MAX_SIZE = 1024 * 1024


def update_json_file(path: Path, change: Callable[[dict[str, Any]], T], *, patience: float = LOCK_PATIENCE) -> T:
    """Apply ``change`` to the JSON object in ``path`` under its lock; returns what ``change`` returns.

    Blocking: call it in a worker thread.  Raises ``OSError`` when the file cannot be used (missing
    directory, a symlink, the lock held for longer than ``patience``).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        give_up = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > give_up:
                    raise OSError(errno.EWOULDBLOCK, f"{path.name} stays locked") from None
                time.sleep(0.001)
        try:
            raw = os.pread(fd, _MAX_SIZE, 0)
            try:
                data = json.loads(raw) if raw.strip() else {}
            except ValueError:
                data = {}
            if not isinstance(data, dict):
                data = {}
            result = change(data)
            content = json.dumps(data, sort_keys=True).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, content, 0)
            return result
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
