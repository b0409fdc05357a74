"""rgw.client.transport.BoundedTransport: every round trip bounded in time and size, -v told of each."""

from __future__ import annotations

import gzip
import logging
import random
import tracemalloc
import zlib
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from trio.testing import MockClock

from rgw.client import transport as transport_module
from rgw.client.transport import MAX_BODY, BoundedTransport
from rgw.errors import GatewayError

pytestmark = pytest.mark.anyio
URL = "https://gw.example.com/api/v1/info"
MIB = 1024 * 1024


class Inner(httpx.AsyncBaseTransport):
    """Answers every request with ``answer(request)``; notes whether it was closed."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.answer(request)

    async def aclose(self) -> None:
        self.closed = True


class Raw(httpx.AsyncByteStream):
    """A body as it comes off the wire (httpx decodes one given as ``content``)."""

    def __init__(self, content: bytes) -> None:
        self.chunks = [content[at : at + 64 * 1024] for at in range(0, len(content), 64 * 1024)]

    def __aiter__(self) -> Raw:
        return self

    async def __anext__(self) -> bytes:
        if not self.chunks:
            raise StopAsyncIteration
        return self.chunks.pop(0)


def answering(status: int = 200, content: bytes = b"{}", headers: dict[str, str] | None = None) -> Inner:
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, stream=Raw(content), headers=headers or {})

    return Inner(answer)


async def send(inner: httpx.AsyncBaseTransport, *, total: float = 10.0, **kwargs: Any) -> httpx.Response:
    request = httpx.Request("GET", URL, extensions=kwargs.pop("extensions", {}))
    return await BoundedTransport(inner, total=total, **kwargs).handle_async_request(request)


def test_the_largest_answer_read_is_four_mib() -> None:
    assert MAX_BODY == 4 * MIB
    assert BoundedTransport(answering(), total=1.0).max_body == MAX_BODY


async def test_the_request_goes_to_the_inner_transport_and_its_answer_comes_back_whole() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        body = Raw(str(request.url).encode())
        return httpx.Response(201, stream=body, headers={"x-rack": "prod"}, extensions={"http_version": b"HTTP/2"})

    response = await send(Inner(answer))
    assert response.status_code == 201
    assert response.content == URL.encode()
    assert response.headers["x-rack"] == "prod"
    assert response.extensions["http_version"] == b"HTTP/2"


async def test_an_answer_of_exactly_the_cap_is_read_and_one_byte_more_is_refused() -> None:
    assert (await send(answering(content=b"x" * (2 * MIB)), max_body=2 * MIB)).content == b"x" * (2 * MIB)
    with pytest.raises(GatewayError) as info:
        await send(answering(content=b"x" * (2 * MIB + 1)), max_body=2 * MIB)
    assert str(info.value) == "gateway sent more than 2 MiB; not reading the rest"
    assert info.value.hint == "Check that the URL points at a rack gateway, not a file server or another service."


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), (" GZip ", gzip.compress)],
)
async def test_a_compressed_answer_is_decompressed_here_and_says_so_no_more(encoding: str, compress: Any) -> None:
    body = b'{"name": "prod"}' * 100
    wire = compress(body)
    response = await send(
        answering(content=wire, headers={"content-encoding": encoding, "content-length": str(len(wire))})
    )
    assert response.content == body
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(body))


@pytest.mark.parametrize("encoding", ["identity", ""])
async def test_an_identity_or_empty_encoding_is_read_as_it_is(encoding: str) -> None:
    response = await send(answering(content=b"plain", headers={"content-encoding": encoding}))
    assert response.content == b"plain"
    assert response.headers["content-length"] == "5"


async def test_a_compressed_answer_is_capped_at_what_it_expands_to() -> None:
    exact = gzip.compress(b"\0" * (2 * MIB))
    assert len((await send(answering(content=exact, headers={"content-encoding": "gzip"}), max_body=2 * MIB)).content)
    bomb = gzip.compress(b"\0" * (2 * MIB + 1))
    with pytest.raises(GatewayError, match=r"^gateway sent more than 2 MiB; not reading the rest$"):
        await send(answering(content=bomb, headers={"content-encoding": "gzip"}), max_body=2 * MIB)


@pytest.mark.parametrize("body", [b"not gzip at all", zlib.compress(b"{}")], ids=["garbage", "zlib-not-gzip"])
async def test_a_broken_compressed_answer_is_a_gateway_error_naming_the_encoding(body: bytes) -> None:
    with pytest.raises(GatewayError) as info:
        await send(answering(content=body, headers={"content-encoding": "gzip"}))
    assert str(info.value) == "gateway sent a broken gzip body"


async def test_a_compressed_answer_of_many_chunks_is_read_up_to_the_cap_and_refused_past_it() -> None:
    noise = random.Random(7).randbytes(2 * MIB)  # incompressible: many chunks on the wire
    exact = gzip.compress(noise)
    assert len(exact) > 64 * 1024
    assert (
        await send(answering(content=exact, headers={"content-encoding": "gzip"}), max_body=2 * MIB)
    ).content == noise
    over = gzip.compress(noise + b"x" * 100_000)
    with pytest.raises(GatewayError) as info:
        await send(answering(content=over, headers={"content-encoding": "gzip"}), max_body=2 * MIB)
    assert str(info.value) == "gateway sent more than 2 MiB; not reading the rest"


async def test_a_gzip_bomb_is_never_expanded_in_memory_past_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (64 * MIB))  # one chunk on the wire
    tracemalloc.start()
    try:
        with pytest.raises(GatewayError):
            await send(answering(content=bomb, headers={"content-encoding": "gzip"}), max_body=MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MIB


async def test_an_encoding_rgw_does_not_read_is_refused_naming_it_cut_at_40_characters() -> None:
    with pytest.raises(GatewayError) as info:
        await send(answering(headers={"content-encoding": "BR"}))
    assert str(info.value) == "gateway sent a body in an encoding rgw does not read (br)"
    with pytest.raises(GatewayError) as info:
        await send(answering(headers={"content-encoding": "x" * 50}))
    assert str(info.value) == f"gateway sent a body in an encoding rgw does not read ({'x' * 40})"


async def test_a_redirect_to_an_invalid_url_is_a_gateway_error_with_its_status() -> None:
    with pytest.raises(GatewayError) as info:
        await send(answering(302, b"", {"location": "http://[::1"}))
    assert str(info.value) == "gateway redirected to an invalid URL"
    assert info.value.status == 302
    response = await send(answering(302, b"", {"location": "/elsewhere"}))
    assert response.headers["location"] == "/elsewhere"


async def test_the_answer_is_closed_after_it_is_read_and_closing_closes_the_inner_transport() -> None:
    closed: list[bool] = []

    class Stream(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            yield b"{}"

        async def aclose(self) -> None:
            closed.append(True)

    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Stream())

    inner = Inner(answer)
    bounded = BoundedTransport(inner, total=1.0)
    await bounded.handle_async_request(httpx.Request("GET", URL))
    assert closed == [True]
    await bounded.aclose()
    assert inner.closed


@pytest.fixture
def anyio_backend() -> Any:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def hanging() -> Inner:
    async def answer(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError

    return Inner(answer)


@pytest.mark.parametrize(
    ("timeout", "limit"),
    [({"read": 3.0, "connect": 1.0}, 8.0), ({"read": None}, 5.0), ({}, 5.0)],
    ids=["total-plus-read", "no-read-timeout", "no-timeouts"],
)
async def test_a_round_trip_is_bounded_by_the_total_plus_the_read_timeout(
    timeout: dict[str, float | None], limit: float
) -> None:
    started = anyio.current_time()
    with pytest.raises(httpx.ReadTimeout, match=r"^the gateway's answer took too long$") as info:
        await send(hanging(), total=5.0, extensions={"timeout": timeout})
    assert info.value.request.url == URL
    assert anyio.current_time() - started == limit


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``perf_counter`` as the transport sees it: 11.5 ms pass during the round trip (told as 11 or 12)."""
    ticks = iter([100.0, 100.0115])
    monkeypatch.setattr(transport_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))


@pytest.mark.usefixtures("clock")
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_under_verbose_each_round_trip_is_told_with_its_outcome_and_milliseconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="rgw")
    request = httpx.Request("GET", "https://gw.example.com/auth/cli/complete?state=secret")
    await BoundedTransport(answering(202), total=1.0).handle_async_request(request)
    assert [r.getMessage() for r in caplog.records if r.name == "rgw"] == [
        "GET https://gw.example.com/auth/cli/complete?state=*** -> 202 (11 ms)"
    ]


@pytest.mark.usefixtures("clock")
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_under_verbose_a_failed_round_trip_names_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    caplog.set_level(logging.DEBUG, logger="rgw")
    with pytest.raises(httpx.ConnectError):
        await send(Inner(refuse))
    assert [r.getMessage() for r in caplog.records if r.name == "rgw"] == [
        f"GET {URL} -> failed (ConnectError) (11 ms)"
    ]


@pytest.mark.usefixtures("clock")
async def test_under_verbose_a_round_trip_out_of_time_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rgw")
    with pytest.raises(httpx.ReadTimeout):
        await send(hanging(), total=1.0)
    assert [r.getMessage() for r in caplog.records if r.name == "rgw"] == [f"GET {URL} -> no answer in time (11 ms)"]


async def test_without_verbose_nothing_is_told(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rgw")
    await send(answering())
    assert [r for r in caplog.records if r.name == "rgw"] == []
