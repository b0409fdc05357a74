"""A deployed gateway that silently rejected the sign-in answers 202 for ever (issue 11, item 7).

The user is told, after a while and again later, what the likely causes are and how to retry or give
up; on a terminal, Enter opens the browser again; ``--progress json`` carries the same event.  The
reminder's first delay is an option of the flow (60 s in the CLI); here it is short so the test
need not wait a minute.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from rgw.cli.render import JsonRenderer, TextRenderer
from rgw.client import GatewayClient
from rgw.config import ConfigStore
from rgw.login import events as ev
from rgw.login.flow import LoginFlow, LoginOptions
from rgw.retry import RetryPolicy
from rgw.testing import RunningGateway
from tests.integration.flowkit import Recorder, device_on, state_of
from tests.integration.test_login_flow import ListPaste

pytestmark = pytest.mark.anyio


class RejectedSignIn:
    """A browser whose sign-in the gateway rejected without saying so: nothing ever reaches the CLI."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    async def open(self, url: str) -> bool:
        self.opened.append(url)
        return True


def deployed_flow(
    client: GatewayClient,
    tmp_path: Path,
    browser: RejectedSignIn,
    emit: Callable[[ev.LoginEvent], None],
    remind_after: float,
    paste: ListPaste | None = None,
) -> LoginFlow:
    """A login on the deployed gateway that polls only (no loopback), reminding after ``remind_after``."""
    return LoginFlow(
        client=client,
        store=ConfigStore(tmp_path / "config"),
        browser=browser,
        device=device_on("test-host"),
        emit=emit,
        policy=RetryPolicy(initial=0.05, cap=0.5),
        options=LoginOptions(timeout=60, remind_after=remind_after, use_loopback=False),
        paste=paste,
    )


async def test_the_user_is_reminded_why_and_enter_reopens_the_browser(
    deployed_gateway: RunningGateway, tmp_path: Path
) -> None:
    recorder, browser, paste = Recorder(), RejectedSignIn(), ListPaste()
    text = io.StringIO()
    render = TextRenderer(text, prefix_racks=False)

    def emit(event: ev.LoginEvent) -> None:
        recorder(event)
        render(event)

    async with paste.send, paste.receive, GatewayClient(deployed_gateway.url) as client:
        flow = deployed_flow(client, tmp_path, browser, emit, 0.5, paste)
        async with anyio.create_task_group() as tg:

            async def user() -> None:
                first = await recorder.first(ev.StillWaiting)
                assert isinstance(first, ev.StillWaiting)
                await paste.send.send("")  # Enter: open the browser again
                with anyio.fail_after(30):
                    while len(browser.opened) < 2:
                        await anyio.sleep(0.01)
                # Then the user really signs in, and the login ends.
                deployed_gateway.gateway.complete_browser_login(state_of(browser.opened[0]), "developer@example.com")

            tg.start_soon(user)
            try:
                session = await flow.run("prod")
            finally:  # unclosed streams would warn (an error) in whichever test the collector runs in
                paste.send.close()
                paste.receive.close()
    assert session.email == "developer@example.com"
    assert browser.opened[0] == browser.opened[1]  # the same sign-in, opened again
    reminders = recorder.of(ev.StillWaiting)
    assert reminders[0] == ev.StillWaiting("prod", 0.5, can_reopen=True)
    out = text.getvalue()
    assert (
        "Still waiting for the sign-in after 0 s. If the browser showed an error, the likely causes are: "
        "your email domain is not allowed on this gateway, or the consent page was cancelled; if it is still "
        "open, finish signing in there.\nPress Enter to open the browser again, or Ctrl-C to give up.\n"
    ) in out
    assert out.count("Opening browser for authentication...") == 2


async def test_without_a_terminal_the_reminder_says_how_to_start_over_and_json_carries_it(
    deployed_gateway: RunningGateway, tmp_path: Path
) -> None:
    recorder, stream = Recorder(), io.StringIO()
    text = io.StringIO()
    as_json, as_text = JsonRenderer(stream), TextRenderer(text, prefix_racks=False)

    def emit(event: ev.LoginEvent) -> None:
        recorder(event)
        as_json(event)
        as_text(event)

    async with GatewayClient(deployed_gateway.url) as client:
        flow = deployed_flow(client, tmp_path, RejectedSignIn(), emit, 0.2)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def give_up_after_two_reminders() -> None:
                    with anyio.fail_after(30):
                        while len(recorder.of(ev.StillWaiting)) < 2:
                            await anyio.sleep(0.01)
                    scope.cancel()  # Ctrl-C

                tg.start_soon(give_up_after_two_reminders)
                await flow.run("prod")
    # The second reminder comes three times later than the first.
    assert [r.elapsed for r in recorder.of(ev.StillWaiting)][:2] == [0.2, pytest.approx(0.6)]
    assert "Run the login again to start over, or press Ctrl-C to give up." in text.getvalue()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    still = [e for e in events if e["event"] == "StillWaiting"]
    assert still[0]["rack"] == "prod"
    assert still[0]["elapsed"] == 0.2
    assert still[0]["can_reopen"] is False


async def test_a_pasted_line_that_is_not_this_logins_url_is_said_to_be_ignored(
    deployed_gateway: RunningGateway, tmp_path: Path
) -> None:
    recorder, browser, paste = Recorder(), RejectedSignIn(), ListPaste()
    text = io.StringIO()
    render = TextRenderer(text, prefix_racks=False)

    def emit(event: ev.LoginEvent) -> None:
        recorder(event)
        render(event)

    async with paste.send, paste.receive, GatewayClient(deployed_gateway.url) as client:
        flow = deployed_flow(client, tmp_path, browser, emit, 0, paste)
        async with anyio.create_task_group() as tg:

            async def user() -> None:
                await recorder.first(ev.BrowserOpened)
                await paste.send.send("hello, is this thing on?")
                await paste.send.send("http://127.0.0.1:1/callback?state=someone-elses&result=ok")
                with anyio.fail_after(30):
                    while len(recorder.of(ev.PasteIgnored)) < 2:
                        await anyio.sleep(0.01)
                deployed_gateway.gateway.complete_browser_login(state_of(browser.opened[0]), "developer@example.com")

            tg.start_soon(user)
            await flow.run("prod")
    ignored = recorder.of(ev.PasteIgnored)
    assert len(ignored) == 2
    lines = [line for line in text.getvalue().splitlines() if line.startswith("Ignored that line: ")]
    assert len(lines) == 2
    assert "someone-elses" not in text.getvalue()  # another login's state is not echoed
