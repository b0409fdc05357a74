"""One browser login per rack and gateway URL at a time, across every process on the machine.

A second ``rack-gateway login`` to a rack that another process is already logging in to must not
open a second browser flow: it waits for the first (told who holds it and the sign-in URL), then
uses the session the first one stored.  The per-rack lock is an ``flock`` (``rgw.locks``) on
``login-<hash of the rack>.lock`` beside the config file, so it dies with its process; the holder
writes its PID, the gateway URL it logs in to and, once it has one, its sign-in URL into the lock
file itself, and removes the file when its login ends (safely: see ``rgw.locks.FileLock.release``).

Only a login to the same rack *at the same gateway URL* is taken over: a process logging in to
``prod`` at another URL (a mistyped or hostile one) is waited for, never shown or taken; when it
ends, the waiter logs in itself.  The holder record is another process's word, so it is read as
untrusted (``read_holder``), and the session is taken only when the config says it is for this URL.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

from rgw import aio
from rgw.errors import UsageError
from rgw.locks import FileLock, file_error, holder_record, read_holder
from rgw.urls import normalize_url

#: Longest URL a holder record may name (``rgw.urls.MAX_URL`` plus room for a sign-in URL's query).
_URL_MAX = 8192


class Holder(NamedTuple):
    """What the process holding a rack's login lock says about itself (None: not said, or unusable)."""

    pid: int | None
    #: The gateway URL it logs in to.
    url: str | None
    #: Where its user signs in.
    auth_url: str | None


def same_gateway(url: str | None, other: str | None) -> bool:
    """Whether two gateway URLs name the same gateway (normalized); an unusable one names none."""
    if not url or not other:
        return False
    try:
        return normalize_url(url) == normalize_url(other)
    except UsageError:
        return False


class RackLoginLock:
    def __init__(self, directory: Path, rack: str, url: str | None = None) -> None:
        digest = hashlib.sha256(rack.encode()).hexdigest()[:16]
        self.directory = directory
        self.path = directory / f"login-{digest}.lock"
        #: The gateway URL this process logs in to (said in the holder record).
        self.url = url
        self._lock = FileLock(self.path)

    def try_acquire(self) -> bool:
        """Take the lock if it is free (never blocks: flock with LOCK_NB); a ``ConfigError`` if it cannot."""
        try:
            return self._lock.try_acquire()
        except OSError as exc:
            raise file_error(self.path, exc) from None

    async def publish(self, auth_url: str | None = None) -> None:
        """Tell waiting processes who holds the login, for which gateway URL, and where the user signs in."""
        said = {key: value for key, value in (("url", self.url), ("auth_url", auth_url)) if value}
        await aio.call(self._lock.write_holder, holder_record(**said))

    async def holder(self) -> Holder:
        """The process holding the lock, as far as it has said (each field checked, None if unusable)."""
        record = await aio.call(read_holder, self.path)
        if record is None:
            return Holder(None, None, None)
        pid, url, auth_url = record.get("pid"), record.get("url"), record.get("auth_url")
        return Holder(_pid(pid), _url(url), _url(auth_url))

    async def release(self) -> None:
        """Let go, and remove the lock file (``FileLock.release(remove=True)``): one file per rack
        ever logged in would otherwise stay in the config directory for good."""
        self._lock.release(remove=True)


def _pid(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31 else None


def _url(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _URL_MAX else None
