"""A resumed login waits for its sign-in without opening the browser: it says Enter opens it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import anyio
import pytest

from rgw.cli.render import TextRenderer, clock_time
from rgw.client import GatewayClient
from rgw.login import events as ev
from rgw.models import Session
from rgw.testing import RunningGateway, ScriptedBrowser
from tests.integration.flowkit import Recorder
from tests.integration.test_resume import Clock, NoBrowser, interrupted_login, make_flow

pytestmark = pytest.mark.anyio


class Keys:
    """The terminal: lines the test types."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[str](10)

    async def read_line(self) -> str | None:
        try:
            return await self.receive.receive()
        except anyio.EndOfStream:
            return None


async def resume(
    url: str, config: Path, clock: Clock, browser: NoBrowser, recorder: Recorder, emit: Any, keys: Keys, user: Any
) -> Session:
    async with GatewayClient(url) as client, anyio.create_task_group() as tg:
        tg.start_soon(user)
        flow = make_flow(client, config, browser, recorder, clock)
        flow.emit, flow.paste = emit, keys
        session = await flow.run("dev")
        tg.cancel_scope.cancel()
    return session


async def test_a_resumed_login_says_enter_opens_the_browser_and_enter_does(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    config, clock = tmp_path / "config", Clock()
    auth_url = await interrupted_login(gateway.url, config, clock)
    recorder, shown, keys, browser = Recorder(), io.StringIO(), Keys(), NoBrowser()
    text = TextRenderer(shown)

    def both(event: ev.LoginEvent) -> None:
        recorder(event)
        text(event)

    async def user() -> None:
        await recorder.first(ev.LoginResumed)
        await keys.send.send("")  # Enter
        await recorder.first(ev.BrowserOpening)
        await ScriptedBrowser().open(auth_url)

    with keys.send, keys.receive:
        session = await resume(gateway.url, config, clock, browser, recorder, both, keys, user)
    assert session.email == "developer@example.com"
    assert browser.opened == [auth_url]
    [resumed] = recorder.of(ev.LoginResumed)
    lines = shown.getvalue().splitlines()
    at = lines.index(
        f"Resuming the login started at {clock_time(resumed.started_at)}: its sign-in is not finished yet."
    )  # type: ignore[attr-defined]
    assert lines[at + 1 : at + 3] == [
        f"Finish it in the browser, or visit: {auth_url}",
        "Press Enter to open the browser.",
    ]
