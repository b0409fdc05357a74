"""Fuzzing the one-tab walk's callback handling (issue 20, item 12), on asyncio and trio.

Two targets.  The walk itself (``LoginWalk``), driven by any sequence of what the logins tell it
(offers as hops, links or sign-ins returning elsewhere, starts, finishes, another process's login)
and of what the listener asks (callbacks with offered, replayed, look-alike or random states; the
page, its list, other paths): never a traceback, a hop only for a state it offered as a hop, and
never a ``Location`` outside the allowed set (the page, or the ``auth_url`` of a rack offered as a
hop).  And the listener with a walk attached, over real sockets, given hostile query strings and
paths: every answer a complete response, and any ``Location`` again within that set.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import anyio
import anyio.from_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rgw.login.listener import CallbackListener
from rgw.login.walk import LoginWalk
from tests.fuzzing import fuzz_settings

RACKS = ["a", "b", "c", "d\u202e\x1b"]
URLS = [
    "https://gw-a.example/oauth/authorize?state=1",
    "https://accounts.google.com/o/oauth2/auth?redirect_uri=https%3A%2F%2Fgw.example%2Fcb&state=2",
    "http://127.0.0.1:8080/oauth/authorize?state=3&client_id=rack-gateway",
    "https://gw-b.example/é?x=ü",
]
STATES = ["state-one-" + "x" * 30, "state-two-" + "y" * 30, "state-three-" + "z" * 28]
PATH = "/walk-path-0123456789abcdef"

hostile_text = st.text(max_size=40) | st.sampled_from(
    ["\r\nLocation: https://evil.example/", "%0d%0aSet-Cookie:x=1", "https://evil.example/", "\x00", "%", "&&&"]
)
state_guess = (
    st.sampled_from(STATES) | st.sampled_from([s[:-1] for s in STATES] + [s + "x" for s in STATES]) | hostile_text
)


@dataclass
class Model:
    """What the walk was told, to say where it may send the tab."""

    hop_url: dict[str, str | None] = field(default_factory=dict)
    hop_state: dict[str, str | None] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)

    def allowed(self) -> set[str]:
        return {PATH} | {url for url in self.hop_url.values() if url is not None}

    def hop_states(self) -> set[str]:
        return {s for s in self.hop_state.values() if s is not None}


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("offer"),
            st.sampled_from(RACKS),
            st.sampled_from(URLS),
            st.sampled_from(STATES),
            st.booleans(),
            st.booleans(),
        ),
        st.tuples(st.just("starting"), st.sampled_from(RACKS)),
        st.tuples(st.just("finish"), st.sampled_from(RACKS), st.booleans(), hostile_text),
        st.tuples(st.just("elsewhere"), st.sampled_from(RACKS), st.none() | st.sampled_from(URLS)),
        st.tuples(st.just("callback"), state_guess),
        st.tuples(st.just("respond"), st.sampled_from(["", "/status", "/", "/status/", "x"]) | hostile_text),
    ),
    max_size=25,
)


async def drive(ops: list[tuple[object, ...]]) -> None:
    walk = LoginWalk(RACKS, path=PATH, terminal="box\x1b[2J", parallel=2, hop_wait=0, page_wait=0, settle_wait=0)
    model = Model()
    for op in ops:
        match op:
            case ("offer", str(rack), str(url), str(state), bool(hop), bool(elsewhere)):
                walk.offer(
                    rack, auth_url=url, state=state, hop=hop, returns_to="https://gw.example:443", elsewhere=elsewhere
                )
                walked = hop and not elsewhere
                model.hop_url[rack] = url if walked else None
                model.hop_state[rack] = state if walked else None
                model.finished.discard(rack)
            case ("starting", str(rack)):
                walk.starting(rack)
            case ("finish", str(rack), bool(ok), str(detail)):
                walk.finish(rack, ok=ok, detail=detail)
                model.finished.add(rack)
            case ("elsewhere", str(rack), url):
                walk.elsewhere(rack, url if isinstance(url, str) else None)
                if rack not in model.finished:
                    model.hop_url[rack] = model.hop_state[rack] = None
            case ("callback", str(state)):
                with anyio.fail_after(5):
                    location = await walk.after_callback(state)
                if state not in model.hop_states():
                    assert location is None, (state, location)
                else:
                    assert location in model.allowed(), location
            case ("respond", str(rest)):
                with anyio.fail_after(5):
                    page = await walk.respond(rest)
                if rest not in ("", "/status"):
                    assert page is None
                    continue
                assert page is not None
                if page.location is not None:
                    assert page.status == 302
                    assert page.location in model.allowed(), page.location
                    continue
                assert page.status == 200
                text = page.body.decode()
                assert text.rstrip("\n").isprintable()  # no raw control or bidi character reaches the tab
                if rest == "/status":
                    listed = json.loads(text)
                    for row in listed["racks"]:
                        for key in ("rack", "label", "detail", "where"):
                            assert row[key].isprintable(), (key, row[key])
                        assert row["url"] is None or row["url"] in URLS


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@fuzz_settings(200)
@given(ops=operations)
def test_the_walk_sends_the_tab_only_where_it_may(backend: str, ops: list[tuple[object, ...]]) -> None:
    anyio.run(drive, ops, backend=backend)


# -- the listener with a walk attached, over sockets --------------------------------------------------


@dataclass
class Live:
    portal: anyio.from_thread.BlockingPortal
    listener: CallbackListener
    port: int
    callback: str


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def live(request: pytest.FixtureRequest) -> Iterator[Live]:
    listener = CallbackListener(header_timeout=1.0)
    with anyio.from_thread.start_blocking_portal(request.param) as portal:
        serving, uri = portal.start_task(listener.serve)
        parts = urlsplit(uri)
        assert parts.port is not None
        yield Live(portal, listener, parts.port, parts.path)
        serving.cancel()


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks: list[bytes] = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def new_walk(live: Live, hops: list[tuple[str, str, str]]) -> LoginWalk:
    walk = LoginWalk(RACKS, path=PATH, terminal="box", hop_wait=0, page_wait=0, settle_wait=0)
    live.listener.attach(walk)
    for rack, url, state in hops:
        live.listener.expect(state, rack)
        walk.offer(rack, auth_url=url, state=state, hop=True)
    return walk


@st.composite
def hostile_requests(draw: st.DrawFn, callback: str) -> str:
    """A GET of the callback or the walk's page, with a hostile query or path."""
    pairs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["state", "result", "error", "next", "redirect_uri", "url"]) | hostile_text,
                state_guess | st.sampled_from(["ok", "error", "https://evil.example/"]),
            ),
            max_size=6,
        )
    )
    raw = draw(st.booleans())
    query = "&".join(f"{k}={v}" if raw else f"{quote(k)}={quote(v)}" for k, v in pairs)
    path = draw(
        st.sampled_from([callback, PATH, PATH + "/status", PATH + "/", callback + "/x", "//evil.example" + PATH])
        | hostile_text.map(lambda t: PATH + quote(t))
    )
    target = f"{path}?{query}" if query else path
    return "".join(c if c.isascii() and c.isprintable() and c != " " else quote(c) for c in target)


@fuzz_settings(150)
@given(data=st.data())
def test_hostile_callbacks_never_move_the_tab_outside_the_allowed_set(live: Live, data: st.DataObject) -> None:
    hops = [
        (rack, url, secrets.token_urlsafe(8) + state) for rack, url, state in zip(RACKS[:3], URLS, STATES, strict=False)
    ]
    walk = live.portal.call(new_walk, live, hops)
    allowed = {PATH} | {url for _, url, _ in hops}
    encoded = {u.replace("é", "%C3%A9").replace("ü", "%C3%BC") for u in allowed}
    try:
        target = data.draw(hostile_requests(live.callback))
        answer = exchange(live.port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n\r\n".encode())
        head, sep, _body = answer.partition(b"\r\n\r\n")
        assert sep, answer[:200]
        status_line, *lines = head.split(b"\r\n")
        status = status_line.split(b" ")[1]
        assert status in {b"200", b"302", b"400", b"404", b"405"}, status_line
        headers = [line.split(b": ", 1) for line in lines]
        locations = [value.decode() for name, value in headers if name.lower() == b"location"]
        assert len(locations) == (1 if status == b"302" else 0)
        # A walked callback's hop page moves the tab with <meta http-equiv=refresh>: the same places.
        refreshes = re.findall(rb'<meta http-equiv="refresh" content="0;url=([^"]*)">', _body)
        assert len(refreshes) <= 1
        for location in locations + [html.unescape(r.decode()) for r in refreshes]:
            assert location in encoded, location
    finally:
        for _, _, state in hops:
            live.portal.call(live.listener.forget, state)
    assert walk.path == PATH
