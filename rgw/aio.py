"""Async file I/O: aiofiles on asyncio (the CLI's loop), worker threads on other anyio backends,
and plain calls when there is no event loop at all.

aiofiles runs on asyncio's executor only, while the library also runs under trio (our tests run
both).  Every blocking file call the package makes goes through here, so neither loop blocks.

Local commands (``racks``, ``switch``, ``--help`` ...) run without an event loop (``rgw.cli.runner``):
starting asyncio costs more than the rest of such a command.  Their coroutines are stepped by hand,
so here a blocking call is just a call (there is no loop to block), ``sleep`` is ``time.sleep``
(Ctrl-C still interrupts it) and ``now`` is ``time.monotonic``.  Nothing here imports anyio or
aiofiles until a loop is running.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from pathlib import Path  # not imported at start-up: pathlib pulls in urllib.parse and ipaddress

P = ParamSpec("P")
T = TypeVar("T")


def current_loop() -> str | None:
    """``"asyncio"`` or ``"trio"`` when called from a running event loop, else None (a local command)."""
    import sniffio

    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def in_event_loop() -> bool:
    return current_loop() is not None


def write_all(fd: int, content: bytes) -> None:
    """``os.write`` until every byte is written (a short write is not an error)."""
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


async def read_bytes(path: Path) -> bytes:
    loop = current_loop()
    if loop is None:
        return path.read_bytes()  # noqa: ASYNC240 - no event loop to block
    if loop == "asyncio":
        import aiofiles

        async with aiofiles.open(path, "rb") as fh:
            return await fh.read()
    import anyio.to_thread

    return await anyio.to_thread.run_sync(path.read_bytes)


def _write_new_sync(path: Path, content: bytes, mode: int, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        write_all(fd, content)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


async def write_new(path: Path, content: bytes, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Create ``path`` (it must not exist) with ``mode``, write ``content``, optionally fsync."""
    await call(_write_new_sync, path, content, mode, fsync)


async def call(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking function (``os.replace``, a write-and-fsync helper, ...) off the loop."""
    loop = current_loop()
    if loop is None:
        return function(*args, **kwargs)  # no event loop: nothing to block
    if loop == "asyncio":
        import aiofiles.os

        return await aiofiles.os.wrap(function)(*args, **kwargs)
    import anyio.to_thread

    return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))


async def sleep(seconds: float) -> None:
    """``anyio.sleep`` on a loop (cancellable); ``time.sleep`` without one (Ctrl-C interrupts it)."""
    if in_event_loop():
        import anyio

        await anyio.sleep(seconds)
    else:
        time.sleep(seconds)  # noqa: ASYNC251 - no event loop to block


def now() -> float:
    """``anyio.current_time()`` on a loop, ``time.monotonic()`` without one (for deadlines)."""
    if in_event_loop():
        import anyio

        return anyio.current_time()
    return time.monotonic()
