"""Small JSON state files in the config directory, shared by every ``rack-gateway`` process.

``update_json_file`` is the whole mechanism: take the file's ``flock`` (``rgw.locks.FileLock``:
opened ``O_NOFOLLOW``, so a symlink planted in the config directory is never followed, and refused
unless it is a regular file of the user's with one link, so a hard link planted there is never
written through; tried without blocking, for at most ``patience`` seconds) for the few
microseconds of a read-modify-write, and write the result back in place.  It runs in a worker
thread; no lock is ever held while anybody waits for anything else.
Content that is not a JSON object (a crash mid-write, garbage) counts as empty: these files hold
pacing and safety state, never anything that cannot be rebuilt.  Used by the request budget
(``rgw.client.budget``) and the MFA attempt ledger (``rgw.login.ledger``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rgw.locks import FileLock

T = TypeVar("T")

#: How long the file's lock is tried before the caller falls back to state of its own.
LOCK_PATIENCE = 2.0
_MAX_SIZE = 1024 * 1024


def once_per_text(callback: Callable[[str], None] | None) -> Callable[[str], None]:
    """``callback``, saying each text at most once (a file that cannot be used is said once per run)."""
    said: set[str] = set()

    def say(text: str) -> None:
        if callback is not None and text not in said:
            said.add(text)
            callback(text)

    return say


def _no_number(name: str) -> None:
    """``NaN``, ``Infinity``, ``-Infinity`` in a state file: not a number (``null``), never written back."""
    return None


def _finite(text: str) -> float | None:
    """A float of a state file; one too large to hold (``1e999``) is not a number (``null``)."""
    value = float(text)
    return value if math.isfinite(value) else None


def update_json_file(path: Path, change: Callable[[dict[str, Any]], T], *, patience: float = LOCK_PATIENCE) -> T:
    """Apply ``change`` to the JSON object in ``path`` under its lock; returns what ``change`` returns.

    Blocking: call it in a worker thread (``rgw.aio.call``).  Raises ``OSError`` when the file
    cannot be used (missing directory, a symlink, a hard link or anything but a regular file of the
    user's: ``rgw.locks.UnsafeFile``, the lock held for longer than ``patience``).
    """
    lock = FileLock(path, names_holder=False)
    lock.acquire_within(patience)
    try:
        raw = os.pread(lock.fd, _MAX_SIZE, 0)
        try:
            data = json.loads(raw, parse_constant=_no_number, parse_float=_finite) if raw.strip() else {}
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            data = {}
        if not isinstance(data, dict):
            data = {}
        result = change(data)
        content = json.dumps(data, sort_keys=True).encode()
        os.ftruncate(lock.fd, 0)
        os.pwrite(lock.fd, content, 0)
        return result
    finally:
        lock.release()


def warn_unusable(
    tag: str, path: Path, exc: OSError, consequence: str, on_warning: Callable[[str], None] | None
) -> None:
    """Say (once per caller, on stderr and in ``-v``) that a state file cannot be used, and what follows.

    The budget and the MFA ledger fall back to state of their own and count conservatively; this is
    how they say so, so that safety state never stops protecting in silence.
    """
    from rgw import trace

    text = f"Warning: cannot use {path} ({exc.strerror or exc}): {consequence}"
    trace.debug("%s: %s", tag, text)  # the -v line names who gave up: "ledger", "budget"
    if on_warning is not None:
        on_warning(text)
