"""Blocking work off the event loop: ``call`` runs it in a worker thread, or inline with no loop.

``call`` is the one way rgw leaves the loop for blocking work (file I/O, flocks, the keyring, a
browser launch): ``anyio.to_thread`` on asyncio and trio alike, so a cancelled caller waits for its
call to finish, and the two backends behave the same.  aiofiles (asyncio's executor) serves plain
reads (``read_bytes``), which nobody minds being abandoned.

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
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple

if TYPE_CHECKING:
    from pathlib import Path  # not imported at start-up: pathlib pulls in urllib.parse and ipaddress

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


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


#: How a file is opened: ``opener(path, flags) -> fd``, as the built-in ``open`` takes it.
Opener = Callable[[str, int], int]


def read_now(path: Path, opener: Opener | None = None) -> bytes:
    """The whole of ``path``, read at once (blocking: a worker thread's or a local command's read)."""
    with open(path, "rb", opener=opener) as fh:
        return fh.read()


async def read_bytes(path: Path, *, opener: Opener | None = None) -> bytes:
    """The whole of ``path``: aiofiles on asyncio, a worker thread on trio, a plain read with no loop.

    ``opener`` opens and checks the file (``rgw.locks.open_private`` for the config directory).
    A plain read is the one job aiofiles keeps: a cancelled caller may leave it running, since
    nobody waits on what it reads and it changes nothing.
    """
    if current_loop() == "asyncio":
        import aiofiles

        async with aiofiles.open(path, "rb", opener=opener) as fh:
            return await fh.read()
    return await call(read_now, path, opener)


async def call(function: Callable[[*Ts], T], *args: *Ts, abandon: bool = False) -> T:
    """Run blocking work in a worker thread (``anyio.to_thread``); with no event loop, just call it.

    A cancelled caller waits until the call has finished, or it never starts: a read-modify-write
    done under a lock is never left running after the lock is released (``ConfigStore.update``),
    on asyncio as on trio.  ``abandon=True`` is for work that holds nothing and whose result nobody
    needs after a cancel (a browser launch, a security key waiting for a touch): the caller leaves
    at once and the thread finishes on its own.
    """
    if current_loop() is None:
        return function(*args)  # no event loop: nothing to block
    import anyio.to_thread

    return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=abandon)


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
