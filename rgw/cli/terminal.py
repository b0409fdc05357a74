"""Reading the terminal without blocking the event loop, and without leaving a thread behind.

Lines are read from stdin's file descriptor when ``anyio.wait_readable`` says there is input, so a
read can be cancelled at any moment (the login race cancels the paste reader the instant another
path wins).  Hidden input (MFA codes) turns echo off with termios and always restores it, even when
cancelled.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TextIO

import anyio


class TerminalLines:
    """Lines typed or pasted on an interactive stdin."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._buffer = b""
        self._eof = False

    @property
    def fd(self) -> int:
        return self.stream.fileno()

    async def read_line(self) -> str | None:
        while b"\n" not in self._buffer:
            if self._eof:
                if self._buffer:
                    line, self._buffer = self._buffer, b""
                    return line.decode("utf-8", "replace")
                return None
            await anyio.wait_readable(self.fd)
            try:
                chunk = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                self._eof = True
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")


@contextlib.contextmanager
def echo_off(fd: int) -> Iterator[None]:
    """Turn terminal echo off for ``fd`` (a no-op when it is not a terminal)."""
    try:
        import termios
    except ImportError:  # pragma: no cover - not on Windows
        yield
        return
    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        yield
        return
    new = list(old)
    new[3] = new[3] & ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSAFLUSH, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, old)


async def prompt_line(lines: TerminalLines, prompt: str, out: TextIO, *, hidden: bool = False) -> str | None:
    """Print ``prompt`` and read one line; with ``hidden``, nothing typed is echoed.

    Echo goes off *before* the prompt appears: turning it off flushes pending input, so a code typed
    the moment the prompt shows must not be waiting yet.
    """
    if not hidden:
        print(prompt, end=" ", file=out, flush=True)
        return await lines.read_line()
    with echo_off(lines.fd):
        print(prompt, end=" ", file=out, flush=True)
        try:
            return await lines.read_line()
        finally:
            print(file=out, flush=True)
