"""One browser login per rack at a time, across every process on the machine.

A second ``rack-gateway login`` to a rack that another process is already logging in to must not
open a second browser flow: it waits for the first (told who holds it and the sign-in URL), then
uses the session the first one stored.  The per-rack lock is an ``flock`` (``rgw.locks``) on
``login-<hash of the rack>.lock`` beside the config file, so it dies with its process; the holder
writes its PID and sign-in URL into the lock file itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from rgw import aio
from rgw.locks import FileLock, file_error, holder_record, read_holder


class RackLoginLock:
    def __init__(self, directory: Path, rack: str) -> None:
        digest = hashlib.sha256(rack.encode()).hexdigest()[:16]
        self.directory = directory
        self.path = directory / f"login-{digest}.lock"
        self._lock = FileLock(self.path)

    def try_acquire(self) -> bool:
        """Take the lock if it is free (never blocks: flock with LOCK_NB); a ``ConfigError`` if it cannot."""
        try:
            return self._lock.try_acquire()
        except OSError as exc:
            raise file_error(self.path, exc) from None

    async def publish(self, auth_url: str) -> None:
        """Tell waiting processes who holds the login and where the user signs in."""
        await aio.call(self._lock.write_holder, holder_record(auth_url=auth_url))

    async def holder(self) -> tuple[int | None, str | None]:
        """(pid, auth_url) of the process holding the lock, as far as it has said."""
        record = await aio.call(read_holder, self.path)
        if record is None:
            return (None, None)
        pid, url = record.get("pid"), record.get("auth_url")
        return (pid if isinstance(pid, int) else None, url if isinstance(url, str) else None)

    async def release(self) -> None:
        self._lock.release()
