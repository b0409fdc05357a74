"""One browser login per rack at a time, across every process on the machine.

A second ``rack-gateway login`` to a rack that another process is already logging in to must not
open a second browser flow: it waits for the first (told who holds it and the sign-in URL), then
uses the session the first one stored.  The per-rack lock is an ``flock`` (``filelock``) beside the
config file, so it dies with its process; the holder publishes its pid and sign-in URL next to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rgw import aio


class RackLoginLock:
    def __init__(self, directory: Path, rack: str) -> None:
        digest = hashlib.sha256(rack.encode()).hexdigest()[:16]
        self.directory = directory
        self.path = directory / f"login-{digest}.lock"
        self.info_path = directory / f"login-{digest}.json"
        self._lock: Any = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free (never blocks: flock with LOCK_NB)."""
        import filelock

        if self._lock is None:
            self._lock = filelock.FileLock(str(self.path), mode=0o600, thread_local=False)
        try:
            self._lock.acquire(blocking=False)
        except filelock.Timeout:
            return False
        return True

    async def publish(self, auth_url: str) -> None:
        """Tell waiting processes who holds the login and where the user signs in."""
        content = json.dumps({"pid": os.getpid(), "auth_url": auth_url}).encode()
        tmp = self.info_path.with_suffix(f".{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            await aio.call(os.remove, tmp)
        with contextlib.suppress(OSError):
            await aio.write_new(tmp, content, fsync=False)
            await aio.call(os.replace, tmp, self.info_path)

    async def holder(self) -> tuple[int | None, str | None]:
        """(pid, auth_url) of the process holding the lock, as far as it has said."""
        try:
            info = json.loads(await aio.read_bytes(self.info_path))
        except (OSError, ValueError):
            return (None, None)
        if not isinstance(info, dict):
            return (None, None)
        pid, url = info.get("pid"), info.get("auth_url")
        return (pid if isinstance(pid, int) else None, url if isinstance(url, str) else None)

    async def release(self) -> None:
        if self._lock is None or not self._lock.is_locked:
            return
        with contextlib.suppress(OSError):
            await aio.call(os.remove, self.info_path)
        self._lock.release()
