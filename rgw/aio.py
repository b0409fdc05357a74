"""Async file I/O: aiofiles on asyncio (the CLI's loop), worker threads on other anyio backends.

aiofiles runs on asyncio's executor only, while the library also runs under trio (our tests run
both).  Every blocking file call the package makes goes through here, so neither loop blocks.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio.to_thread
import sniffio


def _on_asyncio() -> bool:
    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:  # pragma: no cover - always called from a loop
        return False


async def read_bytes(path: Path) -> bytes:
    if _on_asyncio():
        import aiofiles

        async with aiofiles.open(path, "rb") as fh:
            return await fh.read()
    return await anyio.to_thread.run_sync(path.read_bytes)


def _write_new_sync(path: Path, content: bytes, mode: int, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


async def write_new(path: Path, content: bytes, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Create ``path`` (it must not exist) with ``mode``, write ``content``, optionally fsync."""
    if not _on_asyncio():
        await anyio.to_thread.run_sync(_write_new_sync, path, content, mode, fsync)
        return
    import aiofiles
    import aiofiles.os

    fd = await aiofiles.os.wrap(os.open)(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    async with aiofiles.open(fd, "wb") as fh:
        await fh.write(content)
        await fh.flush()
        if fsync:
            await aiofiles.os.wrap(os.fsync)(fd)


async def call(function: object, *args: object) -> object:
    """Run a blocking ``os`` function (replace, remove, chmod, makedirs) off the loop."""
    assert callable(function)
    if _on_asyncio():
        import aiofiles.os

        return await aiofiles.os.wrap(function)(*args)
    return await anyio.to_thread.run_sync(lambda: function(*args))
