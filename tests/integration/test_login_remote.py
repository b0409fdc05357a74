"""Remote approval: ``login --qr`` (the sign-in URL as a terminal QR code) and ``--print-url-only``."""

from __future__ import annotations

import io

import anyio
import pytest
import segno

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.cli.qr import CAPTION, QUIET_ZONE, qr_lines
from rgw.login.browser import NoBrowser
from rgw.testing import RunningGateway, ScriptedBrowser
from tests.integration.conftest import Cli
from tests.integration.flowkit import wait_until

pytestmark = pytest.mark.anyio

DEV = "developer@example.com"


def decode_rows(lines: list[str]) -> list[list[int]]:
    """Half-block rows back into modules (1 = dark), the quiet zone removed."""
    top = {" ": 1, "\u2580": 0, "\u2584": 1, "\u2588": 0}
    bottom = {" ": 1, "\u2580": 1, "\u2584": 0, "\u2588": 0}
    rows: list[list[int]] = []
    for line in lines:
        rows.append([top[c] for c in line])
        rows.append([bottom[c] for c in line])
    size = len(lines[0]) - 2 * QUIET_ZONE
    return [row[QUIET_ZONE : QUIET_ZONE + size] for row in rows[QUIET_ZONE : QUIET_ZONE + size]]


def test_the_qr_lines_are_the_code_of_the_url() -> None:
    url = "https://gateway.example.com/oauth/authorize?state=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    lines = qr_lines(url)
    expected = [list(row) for row in segno.make_qr(url, error="l").matrix]
    assert decode_rows(lines) == expected
    assert all("\x1b" not in line for line in lines)  # no escape sequences: fine on TERM=dumb, in a log
    assert len({len(line) for line in lines}) == 1


async def test_login_qr_prints_the_url_then_its_code_then_the_url_again(cli: Cli, gateway: RunningGateway) -> None:
    """The URL before the code and after it (#22, item 6): a code taller than the terminal scrolls
    its header away, and the URL under it stays in view."""
    result = await cli("login", "dev", gateway.url, "--qr", "--timeout", "60")
    assert result.code == 0, result.err
    assert result.out == f"Logged in as {DEV}\n"
    lines = result.err.splitlines()
    visit = next(i for i, line in enumerate(lines) if line.startswith("If it does not open, visit: "))
    url = lines[visit].removeprefix("If it does not open, visit: ")
    assert url.startswith(f"{gateway.url}/oauth/authorize?state=")
    assert result.err.count(url) == 2
    assert lines[visit + 1] == CAPTION
    code = qr_lines(url)
    assert lines[visit + 2 : visit + 2 + len(code)] == code
    assert lines[visit + 2 + len(code)] == f"Sign-in URL: {url}"
    assert decode_rows(code) == [list(row) for row in segno.make_qr(url, error="l").matrix]


async def test_login_qr_with_no_browser_too(cli: Cli, gateway: RunningGateway) -> None:
    """Without a browser the URL line is the seed's "Open this URL"; the code follows it all the same."""
    out, err = io.StringIO(), io.StringIO()
    app = App(
        options=Options(config_dir=cli.config_dir), environ={}, out=out, err=err, browser=NoBrowser(), interactive=False
    )
    codes: list[int] = []

    async def login() -> None:
        codes.append(await run(["login", "dev", gateway.url, "--qr", "--timeout", "60"], obj=app))

    async with anyio.create_task_group() as tg:
        tg.start_soon(login)
        await wait_until(lambda: CAPTION in err.getvalue(), "the QR code is shown")
        first = err.getvalue().splitlines()[0]
        assert first.startswith("Open this URL in your browser: ")
        await ScriptedBrowser(email=DEV).open(first.removeprefix("Open this URL in your browser: "))
    assert codes == [0]
    assert out.getvalue() == f"Logged in as {DEV}\n"


async def test_print_url_only_prints_the_url_alone_and_waits(cli: Cli, gateway: RunningGateway) -> None:
    out, err = io.StringIO(), io.StringIO()
    opened: list[str] = []

    class Watching(ScriptedBrowser):
        async def open(self, url: str) -> bool:
            opened.append(url)
            return await super().open(url)

    app = App(
        options=Options(config_dir=cli.config_dir),
        environ={},
        out=out,
        err=err,
        browser=Watching(email=DEV),
        interactive=False,
    )
    codes: list[int] = []

    async def login() -> None:
        codes.append(await run(["login", "dev", gateway.url, "--print-url-only", "--timeout", "60"], obj=app))

    async with anyio.create_task_group() as tg:
        tg.start_soon(login)
        await wait_until(lambda: out.getvalue().endswith("\n"), "the URL is printed")
        url = out.getvalue().removesuffix("\n")
        assert url.startswith(f"{gateway.url}/oauth/authorize?state=")
        assert not codes  # still waiting for the sign-in
        assert err.getvalue() == ""  # no progress
        await ScriptedBrowser(email=DEV).open(url)  # the wrapper's user signs in elsewhere
    assert codes == [0]
    assert opened == []  # no browser was opened here
    assert out.getvalue() == url + "\n"  # stdout: the URL alone
    assert err.getvalue() == f"Logged in as {DEV}\n"


async def test_qr_and_print_url_only_take_one_rack(cli: Cli, gateway: RunningGateway) -> None:
    assert (await cli("login", "a", gateway.url, "--timeout", "60")).code == 0
    for flag in ("--qr", "--print-url-only"):
        result = await cli("login", "--all", flag)
        assert result.code == 2
        assert result.err == "Error: --qr and --print-url-only log in to one rack at a time\nRun: rack-gateway --help\n"
