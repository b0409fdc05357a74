"""Async file I/O: aiofiles on asyncio (the CLI's loop), worker threads on other anyio backends.

aiofiles runs on asyncio's executor only, while the library also runs under trio (our tests run
both).  Every blocking file call the package makes goes through here, so neither loop blocks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import anyio.to_thread
import sniffio

P = ParamSpec("P")
T = TypeVar("T")


def _on_asyncio() -> bool:
    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:  # pragma: no cover - always called from a loop
        return False


def write_all(fd: int, content: bytes) -> None:
    """``os.write`` until every byte is written (a short write is not an error)."""
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


async def read_bytes(path: Path) -> bytes:
    if _on_asyncio():
        import aiofiles

        async with aiofiles.open(path, "rb") as fh:
            return await fh.read()
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
    if _on_asyncio():
        import aiofiles.os

        return await aiofiles.os.wrap(function)(*args, **kwargs)
    return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
