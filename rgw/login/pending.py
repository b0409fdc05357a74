"""A login in progress, kept on disk so that a later ``rack-gateway login`` can resume it.

Ctrl-C, a crash or a laptop lid end the CLI, not the gateway's login state: a user who finished the
sign-in in the browser meanwhile has a verified login waiting to be redeemed.  ``PendingLogins``
keeps one record per rack and gateway URL, ``pending-<hash of rack and URL>.json`` beside the config
file (0600, opened without following symlinks, written under its ``flock``: ``rgw.shared``).  It
holds the state and the code verifier (secrets: they never reach an event, a log or the terminal),
the sign-in URL, the wall-clock time the login started and the loopback listener the gateway was
given (a later login listens there again when it can, so the browser the gateway sends back finds it).
The record is read back as untrusted: a planted one (a listener on port 99999, a hard link, a
directory in its place) is ignored or refused, never a traceback, and what is not ours to delete is
left as it is.

A record is used only for its own rack *and* URL, and only while it is younger than
``RESUME_MAX_AGE`` (10 minutes, the default ``--timeout``: a login the user left longer than that is
not one they expect to come back; the deployed gateway itself keeps states without a TTL).  It is
deleted when the login ends with a session or a definitive refusal (the timeout included), and
kept when the CLI is interrupted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rgw import aio
from rgw.locks import UnsafeFile, check_private
from rgw.models import LoginStart, stamp_within
from rgw.shared import update_json_file
from rgw.text import is_token

#: Seconds a pending login may be resumed after it started.
RESUME_MAX_AGE = 600.0
#: A loopback listener's URI as ``CallbackListener.uri`` makes it.
LISTENER_URI = re.compile(r"http://127\.0\.0\.1:[1-9][0-9]{0,4}/[A-Za-z0-9_-]{16,64}")
_FORMAT = 1


def listener_uri(uri: object) -> str | None:
    """``uri`` when it is a loopback listener's URI as ``CallbackListener.uri`` makes it, else None."""
    if not isinstance(uri, str) or not LISTENER_URI.fullmatch(uri):
        return None
    try:
        port = urlsplit(uri).port
    except ValueError:
        return None  # past 65535
    return uri if port is not None and 0 < port <= 65535 else None


@dataclass(frozen=True)
class PendingLogin:
    """A login that was started and has not ended: what redeeming it needs."""

    rack: str
    url: str
    start: LoginStart
    #: Wall-clock (epoch) seconds when ``/auth/cli/start`` answered.
    started_at: float
    #: The loopback listener the gateway will send the browser back to (``http://127.0.0.1:PORT/PATH``).
    listener: str | None = None


class PendingLogins:
    """The pending-login record of one rack at one gateway URL."""

    def __init__(
        self,
        directory: Path,
        rack: str,
        url: str,
        *,
        max_age: float = RESUME_MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        digest = hashlib.sha256(f"{rack}\0{url}".encode()).hexdigest()[:16]
        self.path = directory / f"pending-{digest}.json"
        self.rack = rack
        self.url = url
        self.max_age = max_age
        self.clock = clock

    async def save(self, start: LoginStart, listener: str | None = None) -> PendingLogin:
        """Keep ``start`` as this rack's pending login (replacing any older one).

        ``listener``: the loopback URI the gateway took (a later login listens there again if it can).
        """
        listener = listener_uri(listener) if start.loopback else None
        pending = PendingLogin(self.rack, self.url, start, self.clock(), listener)
        record = {
            "format": _FORMAT,
            "rack": self.rack,
            "url": self.url,
            "auth_url": start.auth_url,
            "state": start.state,
            "code_verifier": start.code_verifier,
            "loopback": start.loopback,
            "started_at": pending.started_at,
            "listener": listener,
        }

        def replace(data: dict[str, Any]) -> None:
            data.clear()
            data.update(record)

        await aio.call(update_json_file, self.path, replace)
        return pending

    async def load(self) -> PendingLogin | None:
        """The pending login, if there is one for this rack and URL that is young enough to resume.

        A record that is unreadable, for another rack or URL, or too old is deleted and ignored.
        """
        if not await aio.call(os.path.lexists, self.path):
            return None
        try:
            record = await aio.call(update_json_file, self.path, dict)
        except OSError:
            return None  # a symlink or a stuck lock: never followed, never resumed
        pending = self._parse(record)
        if pending is None:
            await self.delete()
        return pending

    def _parse(self, record: dict[str, Any]) -> PendingLogin | None:
        if record.get("format") != _FORMAT or record.get("rack") != self.rack or record.get("url") != self.url:
            return None
        auth_url, state, verifier = record.get("auth_url"), record.get("state"), record.get("code_verifier")
        started = record.get("started_at")
        if not (isinstance(auth_url, str) and isinstance(state, str) and isinstance(verifier, str)):
            return None
        if not (is_token(state) and is_token(verifier)):
            return None
        started = stamp_within(started, self.clock(), behind=self.max_age, ahead=0.0)
        if started is None:
            return None  # stale, from the future (a clock that jumped back), or not a time: start afresh
        start = LoginStart(auth_url, state, verifier, loopback=record.get("loopback") is True)
        listener = listener_uri(record.get("listener")) if start.loopback else None
        return PendingLogin(self.rack, self.url, start, started, listener)

    async def delete(self) -> None:
        """Delete the record; anything else in its place (refused when read) is left as it is."""

        def unlink() -> None:
            with contextlib.suppress(FileNotFoundError, UnsafeFile):
                check_private(self.path, os.lstat(self.path))
                os.unlink(self.path)

        await aio.call(unlink)
