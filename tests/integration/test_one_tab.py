"""One browser tab for many racks: the loopback listener's page walks the browser from sign-in to sign-in.

Ten racks on reference gateways with extensions log in through one scripted-browser session that
follows the hops (one launch); deployed gateways are signed in to with the page's links; the hops
are checked (a forged or replayed callback never moves the tab anywhere but the page or a rack's own
``auth_url``); the page escapes what it shows and runs its script under a hash-pinned policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

WALK_PATH = "/walk-" + "x" * 22


class CountingBrowser:
    """The user's browser: counts launches, and lets a scripted user do the clicking."""

    def __init__(self, inner: ScriptedBrowser | None = None) -> None:
        self.inner = inner or ScriptedBrowser(email="developer@example.com")
        self.opened: list[str] = []

    async def open(self, url: str) -> bool:
        self.opened.append(url)
        return await self.inner.open(url)


class FailingBrowser:
    """A browser that cannot be started; remembers what it was asked to open."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.asked = anyio.Event()

    async def open(self, url: str) -> bool:
        self.opened.append(url)
        self.asked.set()
        return False


def seed(cli: Cli, racks: dict[str, str]) -> None:
    cli.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = {"gateways": {name: {"url": url} for name, url in racks.items()}}
    (cli.config_dir / "config.json").write_text(json.dumps(config))
    (cli.config_dir / "config.json").chmod(0o600)


@contextmanager
def gateways(count: int, **settings: Any) -> Iterator[list[RunningGateway]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(running_gateway(GatewaySettings(rack_name=f"gw{i}", **settings))) for i in range(count)
        ]


def authorize_visits(browser: ScriptedBrowser, gw: RunningGateway) -> list[str]:
    return [url for url in browser.visited if url.startswith(gw.url + "/oauth/authorize?state=")]


async def test_ten_racks_log_in_through_one_tab(cli: Cli) -> None:
    with gateways(5) as gws:
        racks = {f"rack{i:02d}": gws[i % 5].url for i in range(10)}
        seed(cli, racks)
        browser = CountingBrowser()
        # The default --parallel (8) leaves two racks queued: their sign-ins are hopped to once slots free.
        result = await cli("login", "--all", "--json", "--timeout", "120", browser=browser)
        assert result.code == 0, result.err
        assert [(r["rack"], r["ok"], r["email"]) for r in json.loads(result.out)] == [
            (rack, True, "developer@example.com") for rack in racks
        ]
        [walk_url] = browser.opened  # one browser launch in all
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/[A-Za-z0-9_-]{22}", walk_url)
        scripted = browser.inner
        assert scripted.sign_ins == 10
        for gw in gws:  # each rack's sign-in page once, two racks a gateway
            assert len(authorize_visits(scripted, gw)) == 2
            assert gw.gateway.request_count("/api/v1/auth/cli/start") == 2
        # The tab went page -> 10 sign-ins -> page, each hop a page of the listener's that moves on.
        assert scripted.visited[0] == walk_url
        assert scripted.visited[-1] == walk_url
        # In between, only sign-in pages, sign-ins, callbacks and the listener's hops to the next sign-in.
        middle = scripted.visited[1 : scripted.visited.index(walk_url, 1)]
        assert len(middle) == 10 * 4
        assert all(url.startswith(gws[0].url.rsplit(":", 1)[0]) for url in middle)
        assert "Logged in to all 10 racks. You can close this tab." in scripted.last_page
        assert scripted.last_page.count('class="done"') == 10
        config = cli.config()["gateways"]
        for rack, url in racks.items():
            gw = next(g for g in gws if g.url == url)
            assert gw.gateway.session_valid(config[rack]["token"])
    assert "Opening one browser tab to sign in to 10 racks..." in result.err
    assert f"If it does not open, visit: {walk_url}\n" in result.err
    assert "Opening browser for authentication" not in result.err  # no tab of its own for any rack
    assert "10 of 10 racks finished." in result.err.splitlines()


async def test_eight_racks_signed_in_without_a_click_walk_through_one_tab_within_the_redirect_limit(
    cli: Cli,
) -> None:
    """Issue 22: an identity provider that remembers the browser signs in without a click, so a walk
    of 302s was one chain of redirects (3 a rack here) that the browser cut off at 20 (Chromium:
    ERR_TOO_MANY_REDIRECTS), and the CLI waited for racks the tab never reached."""
    from rgw.testing.browser import MAX_REDIRECTS

    assert MAX_REDIRECTS == 20  # as Chromium
    with gateways(4, remember_sign_in=True) as gws:
        racks = {f"rack{i}": gws[i % 4].url for i in range(8)}
        seed(cli, racks)
        browser = CountingBrowser()
        result = await cli("login", "--all", "--json", "--timeout", "60", browser=browser)
        assert result.code == 0, result.err
        assert [(r["rack"], r["ok"]) for r in json.loads(result.out)] == [(rack, True) for rack in racks]
        scripted = browser.inner
        assert scripted.sign_ins == 1  # one click: the provider remembers the browser from then on
        for gw in gws:  # each rack's sign-in reached, two racks a gateway
            assert len(authorize_visits(scripted, gw)) == 2
        assert "Logged in to all 8 racks. You can close this tab." in scripted.last_page
    assert "8 of 8 racks finished." in result.err.splitlines()
    assert "has not come back" not in result.err


async def test_a_rack_the_tab_does_not_come_back_from_gets_its_link_on_the_page_and_its_url_printed(
    cli: Cli,
) -> None:
    """The tab stops on its way to a rack's sign-in (too many redirects, a closed tab): after a while
    the page offers that rack's link (in a new tab) and the terminal prints its URL."""
    from rgw.login.walk import STALL_WAIT

    stalled: list[dict[str, Any]] = []

    class StoppingBrowser:
        """Goes to the first sign-in and stops there; then the user signs in with the offered link."""

        async def open(self, url: str) -> bool:
            async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
                first = await http.get(url)
                assert first.status_code == 302  # to a rack's sign-in: the tab stops on its way
                with anyio.fail_after(STALL_WAIT + 30):
                    while not stalled:
                        rows = (await http.get(url + "/status")).json()["racks"]
                        stalled.extend(r for r in rows if r["new_tab"] and r["url"])  # a link offered
                        await anyio.sleep(0.2)
            user = ScriptedBrowser(email="developer@example.com")
            await user.open(stalled[0]["url"])  # its sign-in, then the walk goes on in that tab
            return True

    with gateways(3) as gws:
        racks = {"a": gws[0].url, "b": gws[1].url, "c": gws[2].url}
        seed(cli, racks)
        result = await cli("login", "--all", "--json", "--timeout", "90", browser=StoppingBrowser())
    assert result.code == 0, result.err
    assert [(r["rack"], r["ok"]) for r in json.loads(result.out)] == [(rack, True) for rack in racks]
    [row] = stalled
    assert row["label"] == "the tab did not come back: sign in with the link"
    rack = row["rack"]
    assert (
        f"[{rack}] The browser tab has not come back from this rack's sign-in: if it stopped, sign in with its "
        f"link on the one-tab page, or visit: {row['url']}"
    ) in result.err.splitlines()
    assert result.err.count("has not come back") == 1


async def test_deployed_and_extension_gateways_in_one_walk(cli: Cli) -> None:
    with gateways(2) as ext, gateways(1, extensions=False) as (deployed,):
        racks = {"ext-a": ext[0].url, "dep-a": deployed.url, "ext-b": ext[1].url, "dep-b": deployed.url}
        seed(cli, racks)
        browser = CountingBrowser()
        result = await cli("login", "--all", "--json", "--timeout", "120", browser=browser)
        assert result.code == 0, result.err
        assert {r["rack"]: r["ok"] for r in json.loads(result.out)} == dict.fromkeys(racks, True)
        assert len(browser.opened) == 1
        scripted = browser.inner
        assert scripted.sign_ins == 4
        # The two extension racks came by hops; the deployed ones were listed with their own sign-in
        # link, opening in a new tab, while they waited.
        first_list = next(p for p in scripted.walk_pages if 'target="_blank"' in p)
        links = re.findall(r'<a class="go" href="([^"]*)" target="_blank"', first_list)
        assert len(links) >= 1
        assert all(urlsplit(link.replace("&amp;", "&")).netloc == urlsplit(deployed.url).netloc for link in links)
        assert "sign in with the link" in first_list
        assert deployed.gateway.browser_refusals() == 0
        assert deployed.gateway.rate_limited_count("/api/v1/auth/") == 0
        assert "Logged in to all 4 racks. You can close this tab." in scripted.walk_pages[-1]
    for rack in ("dep-a", "dep-b"):
        assert f"[{rack}] This rack's gateway does not send the browser back: sign in with its link" in result.err
    assert "[ext-a] This rack's gateway does not" not in result.err


async def test_a_failed_rack_does_not_stop_the_walk(cli: Cli) -> None:
    """A gateway refusing the sign-in sends the tab on all the same; the list says which failed."""
    with gateways(1, allowed_domain="other.example") as (strict,), gateways(1) as (plain,):
        seed(cli, {"a": strict.url, "b": plain.url})  # a's gateway refuses this email's domain
        browser = CountingBrowser()
        result = await cli("login", "--all", "--json", "--timeout", "60", browser=browser)
    assert result.code == 11, result.err
    outcome = {r["rack"]: (r["ok"], r["error"]) for r in json.loads(result.out)}
    assert outcome["b"] == (True, None)
    assert outcome["a"][0] is False
    assert "email domain not allowed" in outcome["a"][1]
    last = browser.inner.walk_pages[-1]
    assert "All 2 racks finished: 1 failed (the terminal has the details)." in last
    assert 'class="failed"' in last
    assert "email domain not allowed" in last


async def test_mfa_is_done_in_the_tab_not_the_terminal(cli: Cli, gateway: RunningGateway) -> None:
    """With the walk, MFA happens on the gateway's page in the tab, which then moves on: a code typed
    in the terminal instead would leave the tab on that page."""
    import time

    from tests.integration.test_mfa import MFA_USER, ScriptedPrompter

    seed(cli, {"a": gateway.url, "b": gateway.url})
    secret = gateway.gateway.totp_secret(MFA_USER)
    assert secret is not None
    steps = iter(range(100))  # the second rack's code from the next 30 s step: the gateway refuses replays
    browser = CountingBrowser(
        ScriptedBrowser(email=MFA_USER, totp_secret=secret, clock=lambda: time.time() + 30 * next(steps))
    )
    prompter = ScriptedPrompter(answers=[])
    result = await cli_with_prompter(cli, prompter, browser, "login", "--all", "--json", "--timeout", "60")
    assert result.code == 0, result.err
    assert prompter.prompts == []  # the terminal never asked
    assert len(browser.opened) == 1
    assert browser.inner.sign_ins == 2
    assert [(r["rack"], r["ok"]) for r in json.loads(result.out)] == [("a", True), ("b", True)]
    assert cli.config()["gateways"]["a"]["mfa_verified"] is True
    assert cli.config()["gateways"]["b"]["mfa_verified"] is True
    assert "] Waiting for MFA to be completed in the browser..." in result.err
    assert "Enter TOTP code" not in result.err


async def cli_with_prompter(cli: Cli, prompter: Any, browser: Any, *args: str) -> Any:
    import io

    from rgw.cli import run
    from rgw.cli.app import App, Options
    from tests.integration.conftest import CliResult

    out, err = io.StringIO(), io.StringIO()
    prompter.stream = err
    app = App(
        options=Options(config_dir=cli.config_dir),
        environ={},
        out=out,
        err=err,
        browser=browser,
        interactive=False,
        prompter=prompter,
    )
    code = await run(list(args), obj=app)
    return CliResult(code, out.getvalue(), err.getvalue())


async def test_a_browser_that_cannot_start_leaves_the_page_to_open_by_hand(cli: Cli) -> None:
    with gateways(2) as gws:
        seed(cli, {"a": gws[0].url, "b": gws[1].url})
        failing = FailingBrowser()
        user = ScriptedBrowser(email="developer@example.com")
        results: list[Any] = []

        async def login() -> None:
            results.append(await cli("login", "--all", "--json", "--timeout", "60", browser=failing))

        async with anyio.create_task_group() as tg:
            tg.start_soon(login)
            with anyio.fail_after(30):
                await failing.asked.wait()
            await user.open(failing.opened[0])  # the user opens the printed page themself
        [result] = results
    assert result.code == 0, result.err
    assert len(failing.opened) == 1  # one launch tried, not one per rack
    assert user.sign_ins == 2
    lines = result.err.splitlines()
    assert f"If it does not open, visit: {failing.opened[0]}" in lines
    assert (
        "The browser could not be opened: open the page above yourself, or run the login with --no-browser "
        "for each rack's own sign-in URL."
    ) in lines


def test_no_browser_prints_every_url_and_the_one_tab_page(tmp_path: Path) -> None:
    from tests.integration.pipes import PipeReader
    from tests.integration.procs import spawn

    with gateways(1) as (gw,), gateways(1, extensions=False) as (deployed,):
        config = tmp_path / "cfg"
        config.mkdir(mode=0o700)
        (config / "config.json").write_text(
            json.dumps({"gateways": {"a": {"url": gw.url}, "d": {"url": deployed.url}}})
        )
        proc = spawn(config, "login", "--all", "--no-browser", "--timeout", "60")
        err = PipeReader(proc.stderr, "the login's stderr")
        prefix = "To sign in to all 2 racks in one browser tab on this machine, visit: "
        page = err.wait_for(lambda line: line.startswith(prefix), 30, "the one-tab page").removeprefix(prefix)
        for rack in ("a", "d"):
            err.wait_for(lambda line, r=rack: line.startswith(f"[{r}] Open this URL in your browser: "), 30, rack)
        user = ScriptedBrowser(email="developer@example.com")
        anyio.run(user.open, page.strip())
        assert proc.wait(timeout=60) == 0, err.text()
    assert user.sign_ins == 2
    assert "Opening" not in err.text()


def test_ctrl_c_then_the_same_multi_rack_login_walks_the_resumed_racks(tmp_path: Path) -> None:
    """Interrupted before any sign-in: the next run listens where the gateways will send the tab (the
    same port and paths) and walks through the resumed racks, one of them finished meanwhile."""
    import signal
    import sys

    from tests.integration.pipes import PipeReader
    from tests.integration.procs import cli_env, spawn

    with gateways(3) as gws:
        config = tmp_path / "cfg"
        config.mkdir(mode=0o700)
        racks = {"a": gws[0].url, "b": gws[1].url, "c": gws[2].url}
        (config / "config.json").write_text(json.dumps({"gateways": {r: {"url": u} for r, u in racks.items()}}))
        env = cli_env()
        env["BROWSER"] = f"{sys.executable} -c pass %s"  # "opens" and signs nobody in
        first = spawn(config, "login", "--all", "--timeout", "60", env=env)
        err = PipeReader(first.stderr, "the first login")
        for rack in racks:
            err.wait_for(lambda line, r=rack: line.startswith(f"[{r}] Waiting for the browser"), 30, rack)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=30) == 130
        records = [json.loads(p.read_text()) for p in config.glob("pending-*.json")]
        assert sorted(r["rack"] for r in records) == ["a", "b", "c"]
        assert len({r["listener"] for r in records}) == 1  # the one shared listener
        old = records[0]["listener"]
        b = next(r for r in records if r["rack"] == "b")
        # b's sign-in, finished while no CLI ran, in the tab the first run opened: the gateway then
        # sends the tab to that run's listener, gone now ("connection refused").
        with pytest.raises(httpx.ConnectError):
            anyio.run(ScriptedBrowser().open, b["auth_url"])

        env["BROWSER"] = f"{sys.executable} -m rgw.testing.scripted_browser %s"
        second = spawn(config, "login", "--all", "--timeout", "60", env=env)
        _out, errors = second.communicate(timeout=90)
    assert second.returncode == 0, errors
    assert "[b] Resumed the login started at " in errors
    for rack in ("a", "c"):
        assert f"[{rack}] Resuming the login started at " in errors
    assert "The browser could not be opened" not in errors  # no hop ended on a dead listener
    page = next(line for line in errors.splitlines() if line.startswith("If it does not open, visit: "))
    assert page.split("/")[2] == old.split("/")[2]  # the same 127.0.0.1:port
    assert list(config.glob("pending-*.json")) == []
    gateways_after = json.loads((config / "config.json").read_text())["gateways"]
    assert all(gateways_after[r]["email"] == "developer@example.com" for r in racks)
    assert "3 of 3 racks finished." in errors.splitlines()


def test_ctrl_c_after_some_racks_logged_in_names_them(tmp_path: Path) -> None:
    import signal
    from urllib.parse import parse_qs

    from tests.integration.pipes import PipeReader
    from tests.integration.procs import spawn

    with gateways(2) as gws:
        config = tmp_path / "cfg"
        config.mkdir(mode=0o700)
        (config / "config.json").write_text(
            json.dumps({"gateways": {"a": {"url": gws[0].url}, "b": {"url": gws[1].url}}})
        )
        proc = spawn(config, "login", "--all", "--no-browser", "--timeout", "60")
        err = PipeReader(proc.stderr, "the login's stderr")
        prefix = "[a] Open this URL in your browser: "
        url = err.wait_for(lambda line: line.startswith(prefix), 30, "a's URL").removeprefix(prefix).strip()
        err.wait_for(lambda line: line.startswith("[b] Open this URL"), 30, "b's URL")
        gws[0].gateway.complete_browser_login(parse_qs(urlsplit(url).query)["state"][0], "developer@example.com")
        err.wait_for(lambda line: line.strip() == "1 of 2 racks finished.", 30, "a logged in")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    lines = err.text().splitlines()
    assert lines[-2:] == [
        "Error: interrupted",
        "Logged in before the interruption: a. For the others, run the same command again with --expired-only "
        "(their logins in progress are taken up again).",
    ]
    assert json.loads((config / "config.json").read_text())["gateways"]["a"]["email"] == "developer@example.com"
    assert len(list(config.glob("pending-*.json"))) == 1  # b's, to take up again
