"""The one-tab walk (``LoginWalk``) served by the loopback listener, over real sockets, on asyncio and trio.

Every hop is checked: the tab is sent only to a rack's own ``auth_url`` (as its login offered it) or
back to the page; a forged, replayed or foreign request moves it nowhere.  The page escapes what it
shows, runs only the script and style its policy pins by hash, and its list is JSON for that script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx
import pytest

from rgw.login.listener import CallbackListener, CallbackWaiter
from rgw.login.walk import LoginWalk

pytestmark = pytest.mark.anyio

A_URL = "https://gw-a.example/oauth/authorize?state=state-a&client_id=rack-gateway"
B_URL = "https://gw-b.example/oauth/authorize?state=state-b&client_id=rack-gateway"
C_URL = "https://gw-c.example/oauth/authorize?state=state-c"
EVIL = "https://evil.example/steal"


_REFRESH = re.compile(r'<meta http-equiv="refresh" content="0;url=([^"]*)">')


def hop_target(response: httpx.Response) -> str | None:
    """Where ``response`` sends the browser: a 302's Location, or a hop page's ``meta refresh``."""
    if response.status_code == 302:
        return response.headers["location"]
    found = _REFRESH.findall(response.text) if response.status_code == 200 else []
    assert len(found) <= 1, response.text
    return html.unescape(found[0]) if found else None


def assert_hop_page(response: httpx.Response, location: str) -> None:
    """A walked callback's answer: a page (never a 302, which would add to the chain of redirects)
    that moves on to ``location`` at once, under the listener's policy, and links there too."""
    assert response.status_code == 200
    assert "location" not in response.headers
    assert hop_target(response) == location
    assert f'<a href="{html.escape(location)}">continue here</a>' in response.text
    assert "<script" not in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


@dataclass
class Walked:
    listener: CallbackListener
    walk: LoginWalk
    page: str
    http: httpx.AsyncClient

    @property
    def callback(self) -> str:
        return self.listener.uri

    async def get(self, url: str, **kwargs: object) -> httpx.Response:
        return await self.http.get(url, **kwargs)  # type: ignore[arg-type]

    def offer(self, rack: str, url: str, state: str, *, hop: bool = True) -> CallbackWaiter:
        waiter = self.listener.expect(state, rack)
        self.walk.offer(rack, auth_url=url, state=state, hop=hop)
        return waiter


@asynccontextmanager
async def walking(
    racks: list[str], on_stall: Callable[[str, str], object] | None = None, **kwargs: float
) -> AsyncIterator[Walked]:
    listener = CallbackListener(terminal="dev-box (process 42)")
    async with anyio.create_task_group() as tg:
        await tg.start(listener.serve)
        settings = {"hop_wait": 0.5, "page_wait": 0.2, "settle_wait": 0.2, **kwargs}
        walk = LoginWalk(
            racks, path="/walk-path-0123456789abcdef", terminal=listener.terminal, on_stall=on_stall, **settings
        )
        page = listener.attach(walk)
        tg.start_soon(walk.watch)
        async with httpx.AsyncClient(trust_env=False, timeout=5, follow_redirects=False) as http:
            yield Walked(listener, walk, page, http)
        tg.cancel_scope.cancel()


async def test_the_page_hops_to_the_first_ready_sign_in_then_each_callback_to_the_next() -> None:
    async with walking(["a", "b"]) as w:
        wa, wb = w.offer("a", A_URL, "state-a"), w.offer("b", B_URL, "state-b")
        first = await w.get(w.page)
        assert (first.status_code, first.headers["location"]) == (302, A_URL)
        hop = await w.get(w.callback, params={"state": "state-a", "result": "ok"})
        assert_hop_page(hop, B_URL)
        assert wa.result is not None
        assert wa.result.ok
        last = await w.get(w.callback, params={"state": "state-b", "result": "error", "error": "denied"})
        assert_hop_page(last, "/walk-path-0123456789abcdef")
        assert wb.result is not None
        assert (wb.result.ok, wb.result.error) == (False, "denied")
        assert first.content == b""
        assert first.headers["cache-control"] == "no-store"
        assert first.headers["referrer-policy"] == "no-referrer"


async def test_forged_hops_move_the_tab_nowhere_else() -> None:
    async with walking(["a", "b"]) as w:
        w.offer("a", A_URL, "state-a")
        w.offer("b", B_URL, "state-b")
        # A state the walk never offered, with a place to go: refused, and no Location at all.
        for params in (
            {"state": "forged", "result": "ok", "next": EVIL},
            {"state": "state-a-", "result": "ok"},
            {"state": "", "result": "ok"},
            {"state": "state-a", "result": "maybe"},
            {"state": ["state-a", "state-b"], "result": "ok"},
        ):
            refused = await w.get(w.callback, params=params)
            assert refused.status_code == 400, params
            assert "location" not in refused.headers
        # The real callback with extra parameters naming other places: only b's own auth_url.
        hop = await w.get(
            w.callback,
            params={"state": "state-a", "result": "ok", "next": EVIL, "redirect_uri": EVIL, "url": EVIL},
        )
        assert_hop_page(hop, B_URL)
        # The same callback again (reload, back button, a replay): to the page, never onward.
        again = await w.get(w.callback, params={"state": "state-a", "result": "ok"})
        assert_hop_page(again, w.walk.path)
        # Walk paths it does not serve, other methods, a foreign Host, a look-alike path.
        assert (await w.get(w.page + "/next", params={"url": EVIL})).status_code == 404
        assert (await w.get(w.page + "x")).status_code == 404
        assert (await w.get(w.page.rsplit("/", 1)[0] + "/walk-path-0123456789abcdeX")).status_code == 404
        assert (await w.http.post(w.page)).status_code == 405
        foreign = await w.get(w.page, headers={"host": "evil.example"})
        assert foreign.status_code == 421
        assert "location" not in foreign.headers


async def test_a_rack_whose_gateway_cannot_call_back_is_a_link_not_a_hop() -> None:
    async with walking(["dep", "ext"]) as w:
        w.offer("dep", C_URL, "state-c", hop=False)
        page = await w.get(w.page)
        assert page.status_code == 200  # no hop to a gateway that would not send the tab back
        assert f'<a class="go" href="{C_URL}" target="_blank" rel="noopener noreferrer">Sign in</a>' in page.text
        assert "sign in with the link" in page.text
        # Nor does its state move the tab: a "callback" for it gets the plain page, then none at all.
        plain = await w.get(w.callback, params={"state": "state-c", "result": "ok"})
        assert (plain.status_code, "location" in plain.headers, hop_target(plain)) == (200, False, None)
        w.listener.forget("state-c")
        assert (await w.get(w.callback, params={"state": "state-c", "result": "ok"})).status_code == 400
        w.offer("ext", B_URL, "state-b")
        assert (await w.get(w.page)).headers["location"] == B_URL


async def test_a_hop_waits_for_a_rack_still_starting() -> None:
    async with walking(["a", "b"], hop_wait=5.0) as w:
        w.offer("a", A_URL, "state-a")
        w.walk.starting("b")
        locations: list[str] = []

        async def callback() -> None:
            response = await w.get(w.callback, params={"state": "state-a", "result": "ok"})
            locations.append(hop_target(response) or "")

        async with anyio.create_task_group() as tg:
            tg.start_soon(callback)
            await anyio.sleep(0.2)
            w.offer("b", B_URL, "state-b")
        assert locations == [B_URL]


async def test_the_page_escapes_foreign_text_and_runs_only_what_its_policy_pins() -> None:
    hostile = "prod<script>alert(1)</script>\x1b]0;owned\x07"
    async with walking([hostile, "b"]) as w:
        w.walk.finish(hostile, ok=False, detail='email domain not allowed: <img src=x onerror="alert(2)">')
        w.walk.finish("b", ok=True, detail="dev@example.com")
        page = await w.get(w.page)
        assert page.status_code == 200
        text = page.text
        assert "<img" not in text
        assert "alert(1)</script>" not in text
        assert "prod&lt;script&gt;alert(1)&lt;/script&gt;\\x1b]0;owned\\x07" in text
        assert "All 2 racks finished: 1 failed (the terminal has the details). You can close this tab." in text
        assert "refresh" not in text  # finished: the page stays as it is
        policy = page.headers["content-security-policy"]
        scripts = re.findall(r"<script>(.*?)</script>", text, re.S)
        styles = re.findall(r"<style>(.*?)</style>", text, re.S)
        assert len(scripts) == len(styles) == 1
        assert f"script-src 'sha256-{digest(scripts[0])}'" in policy
        assert f"style-src 'sha256-{digest(styles[0])}'" in policy
        assert "default-src 'none'" in policy
        assert "connect-src 'self'" in policy
        assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in text  # shown as text, not markup
        status = await w.get(w.page + "/status")
        assert status.headers["content-type"] == "application/json"
        listed = json.loads(status.text)
        assert listed["finished"] is True
        # The printable text the page shows (issue 20, item 8); the script sets it with textContent.
        assert [r["rack"] for r in listed["racks"]] == ["prod<script>alert(1)</script>\\x1b]0;owned\\x07", "b"]
        assert listed["racks"][0]["status"] == "failed"
        assert listed["racks"][1] == {
            "rack": "b",
            "status": "done",
            "label": "logged in",
            "detail": "dev@example.com",
            "where": "",
            "url": None,
            "new_tab": True,
        }


async def test_the_list_refreshes_itself_only_while_it_can_change() -> None:
    async with walking(["a", "b"]) as w:
        w.walk.starting("a")
        starting = (await w.get(w.page)).text
        assert '<meta http-equiv="refresh" content="3">' in starting  # a sign-in may come: come back for it
        w.walk.offer("a", auth_url=C_URL, state="state-c", hop=False)
        queued = (await w.get(w.page)).text
        assert '<meta http-equiv="refresh" content="3">' in queued  # b is still to come
        w.walk.offer("b", auth_url=A_URL.replace("state-a", "state-b2"), state="state-b2", hop=False)
        waiting = (await w.get(w.page)).text
        assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in waiting  # the script does it
        assert "2 of 2" not in waiting
        assert "0 of 2 racks finished." in waiting


async def test_the_final_view_is_known_once_sent() -> None:
    async with walking(["a"]) as w:
        assert not w.walk.tab_is_open()
        w.walk.finish("a", ok=True, detail="dev@example.com")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(w.walk.final_view)
                assert (await w.get(w.page + "/status")).status_code == 200
        assert w.walk.tab_is_open()


def test_the_walk_needs_a_long_path() -> None:
    with pytest.raises(ValueError, match="long random path"):
        LoginWalk(["a"], path="/short", terminal="t")


def test_the_page_path_is_not_the_callback_path() -> None:
    listener = CallbackListener()
    with pytest.raises(ValueError, match="path of its own"):
        listener.attach(LoginWalk(["a"], path=listener._path, terminal="t"))


def digest(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


async def test_a_hop_does_not_wait_for_a_rack_queued_behind_racks_that_hold_every_slot() -> None:
    # parallel 2: "dep" (a link, waiting on the user) and "a" hold the slots; "q" is queued behind them.
    async with walking(["dep", "a", "q"], parallel=2, hop_wait=30.0) as w:
        w.offer("dep", C_URL, "state-c", hop=False)
        w.offer("a", A_URL, "state-a")
        # a's login ending frees a slot: q may be next, so the hop waits for it ...
        waited: list[str] = []

        async def callback() -> None:
            waited.append(hop_target(await w.get(w.callback, params={"state": "state-a", "result": "ok"})) or "")

        async with anyio.create_task_group() as tg:
            tg.start_soon(callback)
            await anyio.sleep(0.2)
            w.walk.starting("q")
            w.offer("q", B_URL, "state-b")
        assert waited == [B_URL]
    async with walking(["dep", "dep2", "a", "q"], parallel=2, hop_wait=30.0) as w:
        # ... but with the slots held by two link racks, nothing frees one: to the page at once.
        w.offer("dep", C_URL, "state-c", hop=False)
        w.offer("dep2", C_URL + "2", "state-c2", hop=False)
        w.offer("a", A_URL, "state-a")
        with anyio.fail_after(5):
            hop = await w.get(w.callback, params={"state": "state-a", "result": "ok"})
        assert_hop_page(hop, w.walk.path)


async def test_reloading_the_page_skips_no_rack() -> None:
    async with walking(["a", "b"]) as w:
        w.offer("a", A_URL, "state-a")
        w.offer("b", B_URL, "state-b")
        assert (await w.get(w.page)).headers["location"] == A_URL
        assert w.walk.tab_is_open()  # at a's sign-in, its callback still to come
        # Back to the page before signing in (the back button, a reload, a link preview): on to b,
        # then a again, as a's sign-in has not come back; never the list while one is open.
        assert (await w.get(w.page)).headers["location"] == B_URL
        assert (await w.get(w.page)).headers["location"] == A_URL
        assert_hop_page(await w.get(w.callback, params={"state": "state-b", "result": "ok"}), A_URL)


async def test_a_location_that_could_split_the_header_is_never_sent() -> None:
    async with walking(["a", "b"]) as w:
        # Checked URLs never look like this (rgw.urls.browser_url); the listener does not rely on it.
        w.offer("a", "https://gw.example/a\r\nSet-Cookie: pwned=1", "state-a")
        w.offer("b", "https://gw.example/é?x=ü", "state-b")
        first = await w.get(w.page)
        assert first.status_code == 404
        assert "set-cookie" not in first.headers
        assert (await w.get(w.page)).headers["location"] == "https://gw.example/%C3%A9?x=%C3%BC"


@pytest.mark.parametrize(
    ("planted", "kept"),
    [
        ("https://gw.example/oauth/authorize?state=s", True),
        ("javascript:alert(document.domain)//", False),
        ("http://evil.example/login", False),
        ("https://gw.example/a\r\nSet-Cookie: x=1", False),
        ("-incognito", False),
    ],
)
def test_a_sign_in_url_another_process_published_is_checked_before_it_is_shown(planted: str, kept: bool) -> None:
    from rgw.login.multi import _fit_for_browser
    from rgw.models import LoginRequest

    request = LoginRequest(rack="a", url="https://gw.example")
    assert _fit_for_browser(planted, request) == (planted if kept else None)


async def test_the_live_list_carries_the_same_printable_text_as_the_page() -> None:
    """Issue 20, item 8: the script writes ``/status`` with textContent a second after the page loads,
    so the JSON must not carry what the page escapes (a ``\\u202e`` reverses the text after it)."""
    from rgw.text import printable

    reversed_rack = "prod\u202egnp.exe"
    detail = "domain not allowed: \u202eevil\x1b[2J\u2066x" + "y" * 400
    async with walking([reversed_rack, "b"]) as w:
        w.walk.finish(reversed_rack, ok=False, detail=detail)
        page = (await w.get(w.page)).text
        listed = json.loads((await w.get(w.page + "/status")).text)
    row = listed["racks"][0]
    assert row["rack"] == printable(reversed_rack, limit=300) == "prod\\u202egnp.exe"
    assert row["detail"] == printable(detail, limit=300)
    for field in ("rack", "label", "detail"):
        assert row[field].isprintable(), field
    assert listed["summary"].isprintable()
    # The same text the page shows (there HTML-escaped as well).
    assert row["detail"] in page
    assert row["rack"] in page


async def test_a_hop_page_escapes_its_url_and_moves_on_without_script() -> None:
    hostile = 'https://gw.example/a?x="><script>alert(1)</script>&y=<b>'
    async with walking(["a", "b"]) as w:
        w.offer("a", A_URL, "state-a")
        w.offer("b", hostile, "state-b")
        assert hop_target(await w.get(w.page)) == A_URL
        hop = await w.get(w.callback, params={"state": "state-a", "result": "ok"})
    assert_hop_page(hop, hostile)
    assert "<b>" not in hop.text
    assert hop.headers["content-type"] == "text/html; charset=utf-8"
    assert hop.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in hop.headers["content-security-policy"]


async def test_a_rack_the_tab_does_not_come_back_from_is_offered_with_its_link_once() -> None:
    """The tab was sent to a's sign-in and stopped on the way (too many redirects, a closed tab):
    after ``stall_wait`` a's link is on the page, opening a new tab, and ``on_stall`` hears of it once."""
    told: list[tuple[str, str]] = []
    stalled = anyio.Event()

    def on_stall(rack: str, url: str) -> None:
        told.append((rack, url))
        stalled.set()

    async with walking(["a", "b"], on_stall=on_stall, stall_wait=0.3) as w:
        w.offer("a", A_URL, "state-a")
        w.offer("b", B_URL, "state-b")
        listed = json.loads((await w.get(w.page + "/status")).text)
        assert [r["new_tab"] for r in listed["racks"]] == [False, False]
        assert hop_target(await w.get(w.page)) == A_URL  # the tab goes to a's sign-in ...
        with anyio.fail_after(10):
            await stalled.wait()  # ... and does not come back
        assert told == [("a", A_URL)]
        a, b = json.loads((await w.get(w.page + "/status")).text)["racks"]
        assert (a["url"], a["new_tab"], a["label"]) == (A_URL, True, "the tab did not come back: sign in with the link")
        assert (b["url"], b["new_tab"]) == (B_URL, False)  # never sent there: the walk still goes on to it
        # Its sign-in done in the new tab, the callback still hops that tab on (to b, not sent there yet).
        assert_hop_page(await w.get(w.callback, params={"state": "state-a", "result": "ok"}), B_URL)
        w.walk.finish("a", ok=True, detail="developer@example.com")
        assert told[0] == ("a", A_URL)
        assert ("a", A_URL) not in told[1:]  # once: b, sent there now, may be told of later


async def test_a_rack_whose_callback_comes_back_is_never_offered_as_stalled() -> None:
    told: list[tuple[str, str]] = []
    async with walking(["a", "b"], on_stall=lambda rack, url: told.append((rack, url)), stall_wait=0.5) as w:
        w.offer("a", A_URL, "state-a")
        w.offer("b", B_URL, "state-b")
        assert hop_target(await w.get(w.page)) == A_URL
        assert_hop_page(await w.get(w.callback, params={"state": "state-a", "result": "ok"}), B_URL)
        w.walk.finish("a", ok=True, detail="x")
        assert_hop_page(await w.get(w.callback, params={"state": "state-b", "result": "ok"}), w.walk.path)
        w.walk.finish("b", ok=True, detail="x")
        listed = json.loads((await w.get(w.page + "/status")).text)
        # Nothing is left to offer, however long the watch runs.
        assert not any(w.walk._stall_due(e) for e in w.walk._entries)
    assert told == []
    assert [r["new_tab"] for r in listed["racks"]] == [False, False]
