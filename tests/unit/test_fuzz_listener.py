"""Fuzzing the loopback listener over real sockets, on asyncio and trio.

One ``CallbackListener`` serves a whole module (in a blocking portal's event loop thread) while
Hypothesis sends it requests from plain sockets: valid browser hits with mutations (method, path,
query, state, result, Host, HTTP version, headers), raw garbage, truncated requests, and
connections half-closed after the request.  For each example a fresh login is expected.  Pinned:
every answer is a complete HTTP/1.1 response with a status the listener knows (or no answer at
all, for a request it could not read); a result reaches the login only from a GET of the
listener's path from a loopback Host whose query carries its state and a result exactly once; an
unmutated hit always delivers; and after every abuse a valid hit for another login still works
and no connection is left open.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import anyio
import anyio.from_thread
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from rgw.login.listener import CallbackListener, CallbackWaiter
from tests.fuzzing import fuzz_settings

STATUSES = {b"200", b"400", b"404", b"405", b"421", b"431"}
SOCKET_TIMEOUT = 10.0


@dataclass
class Live:
    portal: anyio.from_thread.BlockingPortal
    listener: CallbackListener
    path: str
    port: int


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def live(request: pytest.FixtureRequest) -> Iterator[Live]:
    listener = CallbackListener(header_timeout=1.0)
    with anyio.from_thread.start_blocking_portal(request.param) as portal:
        serving, uri = portal.start_task(listener.serve)
        parts = urlsplit(uri)
        assert parts.port is not None
        yield Live(portal, listener, parts.path, parts.port)
        serving.cancel()


def exchange(port: int, data: bytes, *, half_close: bool, host: str = "127.0.0.1") -> bytes:
    """Send ``data`` (then maybe shut down our side), read until the listener closes or resets."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(SOCKET_TIMEOUT)
        sock.connect((host, port))
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the listener already answered and closed (an oversized request)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def expect(live: Live) -> CallbackWaiter:
    state = secrets.token_urlsafe(32)
    waiter: CallbackWaiter = live.portal.call(live.listener.expect, state, "fuzz-rack")
    return waiter


def valid_hit(live: Live, state: str) -> bytes:
    return (f"GET {live.path}?state={state}&result=ok HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n\r\n").encode()


def delivered(live: Live, waiter: CallbackWaiter) -> Any:
    return live.portal.call(lambda: waiter.result)


def check_answer(answer: bytes) -> bytes | None:
    """The status of a complete response (None for no answer at all)."""
    if not answer:
        return None
    head, sep, body = answer.partition(b"\r\n\r\n")
    assert sep, f"an incomplete answer: {answer[:200]!r}"
    status_line, *header_lines = head.split(b"\r\n")
    version, status, _reason = status_line.split(b" ", 2)
    assert version == b"HTTP/1.1"
    assert status in STATUSES, status_line
    headers = dict(line.split(b": ", 1) for line in header_lines)
    assert int(headers[b"Content-Length"]) == len(body)
    assert headers[b"Connection"] == b"close"
    return status


text = st.text(max_size=30)
query_values = st.sampled_from(["ok", "error", "", "OK", "ok ", "\x00", "%00", "%", "é"]) | text


MUTATIONS = (
    "garbage",
    "method",
    "path",
    "state",
    "duplicate",
    "result",
    "drop",
    "raw query",
    "version",
    "host",
    "huge header",
    "cut",
    "trailing garbage",
)


@st.composite
def requests(draw: st.DrawFn, path: str, state: str, port: int) -> tuple[bytes, bool, bool]:
    """(bytes, mutated, half_close): a browser hit for ``state``, unmutated or with mutations."""
    mutations = draw(st.sets(st.sampled_from(MUTATIONS), max_size=3))
    event(f"mutations: {', '.join(sorted(mutations)) or 'none'}" if len(mutations) < 2 else "mutations: several")
    if "garbage" in mutations:
        return draw(st.binary(max_size=600)), True, True
    mutated = False

    def mutate(name: str) -> bool:
        nonlocal mutated
        hit = name in mutations
        mutated = mutated or hit
        return hit

    method = (
        draw(st.sampled_from(["POST", "HEAD", "PUT", "get", "OPTIONS", "GET\x00", "G ET"]))
        if mutate("method")
        else "GET"
    )
    target_path = path
    if mutate("path"):
        target_path = draw(
            st.sampled_from([path + "/", path[:-1], path.upper(), "/", "//" + path, path + "%00", "*", ""])
            | text.map(lambda t: "/" + quote(t))
        )
    params: list[tuple[str, str]] = [("state", state), ("result", draw(st.sampled_from(["ok", "error"])))]
    if params[1][1] == "error":
        params.append(("error", draw(text)))
    if mutate("state"):
        wrong = draw(st.sampled_from([state[:-1], state + "x", state.upper(), "", state[1:]]) | text)
        params = [(k, wrong if k == "state" else v) for k, v in params]
    if mutate("duplicate"):
        params.append((draw(st.sampled_from(["state", "result"])), draw(query_values)))
    if mutate("result"):
        params = [(k, draw(query_values) if k == "result" else v) for k, v in params]
    if mutate("drop"):
        params.pop(draw(st.integers(0, len(params) - 1)))
    extra = draw(st.lists(st.tuples(text, text), max_size=3))
    if extra:
        params.extend(extra)
        mutated = mutated or any(k in ("state", "result") or len(params) > 8 for k, _ in extra)
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params)
    if mutate("raw query"):
        query = draw(st.sampled_from([query + "&&", "state", "=" * 10, query.replace("=", "%3D"), "%zz"]) | text)
    version = draw(st.sampled_from(["HTTP/1.0", "HTTP/2", "HTTP/1.1 x", ""])) if mutate("version") else "HTTP/1.1"
    hosts = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"]
    host_headers = [("Host", draw(st.sampled_from(hosts)))]
    if mutate("host"):
        host_headers = draw(
            st.sampled_from(
                [
                    [],
                    [("Host", "evil.example")],
                    [("Host", f"127.0.0.1:{port + 1}")],
                    [("Host", hosts[0])] * 2,
                    [("Host", f"127.0.0.1:{port}.evil.example")],
                    [("Host", "")],
                ]
            )
        )
    headers = host_headers + draw(
        st.lists(
            st.tuples(st.from_regex(r"\A[A-Za-z-]{1,12}\Z"), st.text(alphabet="abc 123;=", max_size=20)), max_size=3
        )
    )
    headers = [(k, v) for k, v in headers if k.lower() != "host" or (k, v) in host_headers]
    mutated = mutated or any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers)
    if mutate("huge header"):
        headers.append(("X-Pad", "a" * draw(st.integers(8000, 70000))))
    head = f"{method} {target_path}?{query} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    data = head.encode("utf-8", "surrogatepass")
    if mutate("cut"):
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if mutate("trailing garbage"):
        data += draw(st.binary(min_size=1, max_size=200))
    half_close = draw(st.booleans()) or data[-4:] != b"\r\n\r\n"
    return data, mutated, half_close


def acceptable(data: bytes, live: Live, state: str) -> bool:
    """Whether ``data`` is a hit the listener may act on: GET of its path from a loopback Host, with
    ``state`` and a result each exactly once (the spec, written independently of the listener)."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")
    line = head[0].split(" ")
    if len(line) != 3 or line[0] != "GET" or not line[2].startswith("HTTP/1."):
        return False
    target = urlsplit(line[1])
    hosts = [h.split(":", 1)[1].strip().lower() for h in head[1:] if h.lower().startswith("host:")]
    allowed = {f"127.0.0.1:{live.port}", f"localhost:{live.port}", f"[::1]:{live.port}"}
    query = parse_qs(target.query, keep_blank_values=True)
    return (
        target.path == live.path
        and len(hosts) == 1
        and hosts[0] in allowed
        and query.get("state") == [state]
        and query.get("result") in (["ok"], ["error"])
    )


@fuzz_settings(150)
@given(data=st.data(), ipv6=st.booleans())
def test_any_request_gets_a_clean_answer_and_only_the_right_state_delivers(
    live: Live, data: st.DataObject, ipv6: bool
) -> None:
    waiter = expect(live)
    try:
        request, mutated, half_close = data.draw(requests(live.path, waiter.state, live.port))
        host = "::1" if ipv6 and socket.has_ipv6 else "127.0.0.1"
        try:
            answer = exchange(live.port, request, half_close=half_close, host=host)
        except ConnectionRefusedError:  # no ::1 on this machine: the listener binds it when it can
            answer = exchange(live.port, request, half_close=half_close)
        status = check_answer(answer)
        result = delivered(live, waiter)
        if result is not None:
            assert acceptable(request, live, waiter.state), request[:300]
            assert status == b"200"
        if not mutated:
            assert status == b"200", (request[:300], answer[:300])
            assert result is not None
            assert result.state == waiter.state
    finally:
        live.portal.call(live.listener.forget, waiter.state)
    # Whatever that was, the listener still serves the next login.
    other = expect(live)
    try:
        assert check_answer(exchange(live.port, valid_hit(live, other.state), half_close=False)) == b"200"
        assert delivered(live, other) is not None
    finally:
        live.portal.call(live.listener.forget, other.state)


def test_no_connection_is_left_open_after_the_fuzzing(live: Live) -> None:
    async def drained() -> None:
        with anyio.fail_after(SOCKET_TIMEOUT):
            while live.listener.active_connections:
                await anyio.sleep(0.01)

    live.portal.call(drained)
    assert live.listener.active_connections == 0
