"""The loopback callback listener over real sockets, on asyncio and trio.

Normal requests go through httpx; malformed and abusive ones through raw anyio TCP streams.  After
each abuse a valid hit must still wake its login, and no abuse may wake anyone.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import anyio
import anyio.abc
import httpx
import pytest

from rgw.login.listener import CallbackListener, CallbackWaiter
from rgw.models import CallbackResult

STATE = "state-0123456789abcdefghijklmnop"


@asynccontextmanager
async def serving(listener: CallbackListener) -> AsyncIterator[str]:
    async with anyio.create_task_group() as tg:
        uri: str = await tg.start(listener.serve)
        yield uri
        tg.cancel_scope.cancel()


async def get(url: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        return await client.get(url, **kwargs)  # type: ignore[arg-type]


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, then read until the listener closes (or resets) the connection."""
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(data)
            return await read_until_closed(stream)


async def read_until_closed(stream: anyio.abc.ByteStream) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunks.append(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return b"".join(chunks)


async def wait_until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await anyio.sleep(0.01)


async def assert_still_works(listener: CallbackListener, uri: str) -> None:
    waiter = listener.expect("fresh-state-after-abuse", "staging")
    response = await get(uri, params={"state": "fresh-state-after-abuse", "result": "ok"})
    assert response.status_code == 200
    with anyio.fail_after(5):
        assert await waiter.wait() == CallbackResult(state="fresh-state-after-abuse", ok=True)
    listener.forget("fresh-state-after-abuse")


def port_of(uri: str) -> int:
    port = urlsplit(uri).port
    assert port is not None
    return port


def request_bytes(uri: str, *, state: str = STATE, method: str = "GET", host: str | None = None) -> bytes:
    parts = urlsplit(uri)
    return (f"{method} {parts.path}?state={state}&result=ok HTTP/1.1\r\nHost: {host or parts.netloc}\r\n\r\n").encode()


def assert_not_woken(waiter: CallbackWaiter) -> None:
    assert waiter.result is None


@asynccontextmanager
async def abused(listener: CallbackListener) -> AsyncIterator[str]:
    """Serve ``listener`` with a login waiting on ``STATE`` for the block to abuse; the callback URI.

    After the block, that login must not have been woken and a fresh valid hit must still wake its own.
    """
    async with serving(listener) as uri:
        waiter = listener.expect(STATE, "production")
        yield uri
        assert_not_woken(waiter)
        await assert_still_works(listener, uri)


GATEWAY_ERROR = "email domain not allowed: <b>eve@evil.example</b>"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("rack", "query", "shown", "tag", "result"),
    [
        pytest.param(
            "prod<script>alert(1)</script>",
            {"result": "ok"},
            "<h1>Logged in to rack prod&lt;script&gt;alert(1)&lt;/script&gt;</h1><p>The terminal running "
            "<code>rack-gateway login</code> on <strong>dev-box (process 42)</strong> has the session.</p>",
            "<script>",
            CallbackResult(state=STATE, ok=True, error=None),
            id="ok-shows-the-rack",
        ),
        pytest.param(
            "production",
            {"result": "error", "error": GATEWAY_ERROR},
            '<h1>Login to rack production failed</h1><p class="error">email domain not allowed: '
            "&lt;b&gt;eve@evil.example&lt;/b&gt;</p><p>The terminal running <code>rack-gateway login</code> "
            "on <strong>dev-box (process 42)</strong> has the details.</p>",
            "<b>",
            CallbackResult(state=STATE, ok=False, error=GATEWAY_ERROR),
            id="error-carries-the-gateway-text",
        ),
    ],
)
async def test_valid_hit_wakes_the_waiter_with_its_result_and_an_escaped_page(
    rack: str, query: dict[str, str], shown: str, tag: str, result: CallbackResult
) -> None:
    listener = CallbackListener(terminal="dev-box (process 42)")
    async with serving(listener) as uri:
        waiter = listener.expect(STATE, rack)
        response = await get(uri, params={"state": STATE, **query})

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["connection"] == "close"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert shown in response.text
        assert '<p class="close">You can close this tab.</p>' in response.text
        assert tag not in response.text
        assert STATE not in response.text
        with anyio.fail_after(5):
            assert await waiter.wait() == result


@pytest.mark.anyio
async def test_unknown_wrong_and_missing_states_are_rejected_alike() -> None:
    listener = CallbackListener()
    async with serving(listener) as uri:
        waiter = listener.expect(STATE, "production")
        listener.expect("forgotten-state", "production")
        listener.forget("forgotten-state")

        wrong = await get(uri, params={"state": STATE[:-1] + "X", "result": "ok"})
        forgotten = await get(uri, params={"state": "forgotten-state", "result": "ok"})
        missing = await get(uri, params={"result": "ok"})
        bad_result = await get(uri, params={"state": STATE, "result": "maybe"})

        assert [r.status_code for r in (wrong, forgotten, missing, bad_result)] == [400] * 4
        assert wrong.content == forgotten.content == missing.content == bad_result.content
        assert STATE not in wrong.text
        assert wrong.headers["connection"] == "close"
        assert_not_woken(waiter)
        await assert_still_works(listener, uri)
        assert_not_woken(waiter)


@pytest.mark.anyio
async def test_wrong_path_is_404_even_with_the_right_state() -> None:
    async with abused(CallbackListener()) as uri:
        origin = uri.rsplit("/", 1)[0]
        for path in ("/", "/callback", urlsplit(uri).path + "x", urlsplit(uri).path[:-1]):
            response = await get(origin + path, params={"state": STATE, "result": "ok"})
            assert response.status_code == 404, path


@pytest.mark.anyio
async def test_other_methods_are_405() -> None:
    async with abused(CallbackListener()) as uri:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            post = await client.post(uri, params={"state": STATE, "result": "ok"})
            head = await client.head(uri, params={"state": STATE, "result": "ok"})
        assert post.status_code == 405
        assert post.headers["allow"] == "GET"
        assert head.status_code == 405


@pytest.mark.anyio
async def test_foreign_host_header_is_refused() -> None:
    listener = CallbackListener()
    async with serving(listener) as uri:
        port = port_of(uri)
        waiter = listener.expect(STATE, "production")
        for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", f"127.0.0.2:{port}"):
            response = await get(uri, params={"state": STATE, "result": "ok"}, headers={"Host": host})
            assert response.status_code in (400, 421), host
        assert_not_woken(waiter)

        no_host = await raw_exchange(
            port, f"GET {urlsplit(uri).path}?state={STATE}&result=ok HTTP/1.0\r\n\r\n".encode()
        )
        assert no_host.startswith((b"HTTP/1.1 400", b"HTTP/1.1 421"))
        assert_not_woken(waiter)

        response = await get(uri, params={"state": STATE, "result": "ok"}, headers={"Host": f"localhost:{port}"})
        assert response.status_code == 200
        with anyio.fail_after(5):
            assert (await waiter.wait()).ok


@pytest.mark.anyio
async def test_garbage_bytes_get_400_and_a_close() -> None:
    async with abused(CallbackListener()) as uri:
        answer = await raw_exchange(port_of(uri), b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"connection: close" in answer.lower()


@pytest.mark.anyio
async def test_oversized_headers_get_431() -> None:
    async with abused(CallbackListener(max_request_bytes=8192)) as uri:
        parts = urlsplit(uri)
        big_header = (
            f"GET {parts.path}?state={STATE}&result=ok HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"X-Padding: {'a' * 20000}\r\n\r\n"
        ).encode()
        assert (await raw_exchange(port_of(uri), big_header)).startswith(b"HTTP/1.1 431 ")

        long_line = f"GET {parts.path}?state={STATE}&result=ok&pad={'b' * 20000} HTTP/1.1\r\n\r\n".encode()
        assert (await raw_exchange(port_of(uri), long_line)).startswith(b"HTTP/1.1 431 ")


@pytest.mark.anyio
async def test_slowloris_client_is_closed_after_the_header_timeout() -> None:
    listener = CallbackListener(header_timeout=0.5)
    async with abused(listener) as uri:
        request = request_bytes(uri)
        sent: list[int] = []

        async def dribble(stream: anyio.abc.SocketStream) -> None:
            try:
                for byte in request:
                    await stream.send(bytes([byte]))
                    sent.append(byte)
                    await anyio.sleep(1)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass

        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port_of(uri))
            async with stream, anyio.create_task_group() as tg:
                tg.start_soon(dribble, stream)
                answer = await read_until_closed(stream)
                tg.cancel_scope.cancel()

        assert answer == b""  # closed without an answer ...
        assert len(sent) < len(request)  # ... while the request was still incomplete
        await wait_until(lambda: listener.active_connections == 0)


@pytest.mark.anyio
async def test_connections_beyond_the_limit_are_closed() -> None:
    listener = CallbackListener(max_connections=4, header_timeout=30)
    async with serving(listener) as uri:
        waiter = listener.expect(STATE, "production")
        port = port_of(uri)
        idle = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(4)]
        try:
            await wait_until(lambda: listener.active_connections == 4)
            assert await raw_exchange(port, request_bytes(uri)) == b""
            assert_not_woken(waiter)
        finally:
            for stream in idle:
                await stream.aclose()
        await wait_until(lambda: listener.active_connections == 0)
        await assert_still_works(listener, uri)
        assert_not_woken(waiter)


@pytest.mark.anyio
async def test_a_burst_of_bad_requests_is_answered_and_harmless() -> None:
    async with abused(CallbackListener()) as uri:
        statuses: list[int] = []

        async def hit(index: int) -> None:
            statuses.append((await get(uri, params={"state": f"guess-{index}", "result": "ok"})).status_code)

        async with anyio.create_task_group() as tg:
            for index in range(40):
                tg.start_soon(hit, index)
        assert statuses == [400] * 40


@pytest.mark.anyio
async def test_two_logins_share_one_listener() -> None:
    listener = CallbackListener()
    async with serving(listener) as uri:
        first = listener.expect("state-of-production", "production")
        second = listener.expect("state-of-staging", "staging")

        staging = await get(uri, params={"state": "state-of-staging", "result": "ok"})
        assert "rack staging" in staging.text
        assert_not_woken(first)
        production = await get(uri, params={"state": "state-of-production", "result": "error", "error": "denied"})
        assert "rack production" in production.text

        with anyio.fail_after(5):
            assert await second.wait() == CallbackResult(state="state-of-staging", ok=True)
            assert await first.wait() == CallbackResult(state="state-of-production", ok=False, error="denied")


@pytest.mark.anyio
async def test_a_repeated_hit_does_not_change_the_result() -> None:
    listener = CallbackListener()
    async with serving(listener) as uri:
        waiter = listener.expect(STATE, "production")
        assert (await get(uri, params={"state": STATE, "result": "ok"})).status_code == 200
        assert (await get(uri, params={"state": STATE, "result": "error", "error": "x"})).status_code == 200
        with anyio.fail_after(5):
            assert await waiter.wait() == CallbackResult(state=STATE, ok=True)


@pytest.mark.anyio
async def test_uri_names_127_0_0_1_and_an_unguessable_path() -> None:
    one, two = CallbackListener(), CallbackListener()
    async with serving(one) as uri_one, serving(two) as uri_two:
        for uri, listener in ((uri_one, one), (uri_two, two)):
            parts = urlsplit(uri)
            assert parts.scheme == "http"
            assert parts.hostname == "127.0.0.1"
            assert parts.port not in (None, 0)
            assert len(parts.path) > 20
            assert listener.uri == uri
        assert urlsplit(uri_one).path != urlsplit(uri_two).path


@pytest.mark.anyio
async def test_serve_closes_the_port_when_cancelled() -> None:
    listener = CallbackListener()
    async with serving(listener) as uri:
        port = port_of(uri)
    with pytest.raises(OSError, match=r"(?i)refused|connect"):
        await anyio.connect_tcp("127.0.0.1", port)
    with pytest.raises(RuntimeError):
        _ = listener.uri


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.anyio
@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback on this machine")
async def test_ipv6_loopback_on_the_same_port() -> None:
    listener = CallbackListener()
    async with serving(listener) as uri:
        waiter = listener.expect(STATE, "production")
        parts = urlsplit(uri)
        response = await get(f"http://[::1]:{parts.port}{parts.path}", params={"state": STATE, "result": "ok"})
        assert response.status_code == 200
        with anyio.fail_after(5):
            assert (await waiter.wait()).ok


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::", "localhost", "example.com"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        CallbackListener(hosts=("127.0.0.1", host))


def test_uri_before_serving_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not bound"):
        _ = CallbackListener().uri
