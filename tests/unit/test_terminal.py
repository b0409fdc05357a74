"""Hidden prompts on a real pseudo-terminal: echo off while reading, restored even when cancelled."""

from __future__ import annotations

import io
import os
import pty
import termios
from collections.abc import Iterator
from typing import TextIO

import anyio
import pytest

from rgw.cli.terminal import TerminalLines, prompt_line

pytestmark = pytest.mark.anyio


@pytest.fixture
def terminal() -> Iterator[tuple[int, int, TextIO]]:
    """(controller fd, terminal fd, the terminal as the CLI's stdin)."""
    controller, tty = pty.openpty()
    stdin = open(tty, closefd=False)  # noqa: SIM115 - closed below, after the terminal
    try:
        yield controller, tty, stdin
    finally:
        stdin.close()
        os.close(controller)
        os.close(tty)


def echoing(fd: int) -> bool:
    return bool(termios.tcgetattr(fd)[3] & termios.ECHO)


async def test_hidden_prompt_reads_with_echo_off(terminal: tuple[int, int, TextIO]) -> None:
    controller, tty, stdin = terminal
    lines = TerminalLines(stdin)
    out = io.StringIO()
    seen: list[bool] = []

    async def type_code() -> None:
        await anyio.wait_all_tasks_blocked()
        seen.append(echoing(tty))
        os.write(controller, b"123456\n")

    async with anyio.create_task_group() as tg:
        tg.start_soon(type_code)
        answer = await prompt_line(lines, "Enter TOTP code:", out, hidden=True)
    assert answer == "123456"
    assert seen == [False]
    assert echoing(tty)
    assert out.getvalue() == "Enter TOTP code: \n"


async def test_cancelled_prompt_restores_echo(terminal: tuple[int, int, TextIO]) -> None:
    _controller, tty, stdin = terminal
    lines = TerminalLines(stdin)
    out = io.StringIO()
    assert echoing(tty)
    async with anyio.create_task_group() as tg:

        async def ask() -> None:
            await prompt_line(lines, "Enter TOTP code:", out, hidden=True)

        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        assert not echoing(tty)  # waiting for the code, echo off
        tg.cancel_scope.cancel()  # the browser finished MFA first
    assert echoing(tty)
    assert out.getvalue() == "Enter TOTP code: \n"
