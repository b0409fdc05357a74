"""Hidden prompts on a real pseudo-terminal: echo off while reading, restored even when cancelled."""

from __future__ import annotations

import io
import os
import pty
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
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


async def test_the_mfa_prompt_gets_a_code_the_paste_reader_has_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One reader of the terminal per run: bytes the paste reader read ahead reach the MFA prompt."""
    from rgw.cli.app import App, Options

    read_end, write_end = os.pipe()
    stdin = open(read_end, closefd=False)  # noqa: SIM115 - closed below
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # no fileno: the App reads its own stdin only
    try:
        app = App(options=Options(config_dir=tmp_path), environ={}, stdin=stdin, err=io.StringIO(), interactive=True)
        paste = app.paste_source()
        assert paste is not None
        os.write(write_end, b"\n123456\n")  # Enter, then the code: both arrive in one read
        os.close(write_end)
        assert await paste.read_line() == ""  # the paste reader's buffer now holds the code
        assert await app.mfa_prompter.ask("Enter TOTP code:", hidden=True) == "123456"
        assert await app.mfa_prompter.ask("Enter TOTP code:", hidden=True) is None  # and nothing more
    finally:
        stdin.close()
        os.close(read_end)
