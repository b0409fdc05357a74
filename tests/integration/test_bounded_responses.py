"""Answers too big or too slow, through real sockets: a clean error, bounded memory, within --timeout.

A raw-socket hostile gateway in the test's event loop streams its body as it goes (a 400 MB body
is never built in memory, on either side) and counts the bytes it got to send before the CLI hung
up.  The CLI runs in process (``apps``, ``test-auth``) and, for memory, as a subprocess whose peak
RSS (``VmHWM`` from ``/proc/self/status``) it reports at exit.
"""

from __future__ import annotations

import contextlib
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest

from rgw.client.transport import MAX_BODY
from tests.integration.conftest import Cli
from tests.leaks import WATCH

pytestmark = [
    pytest.mark.anyio,
    # Stopping at the cap leaves httpx's (and httpcore's) body generators unexhausted; the connection
    # is closed (response.aclose()), but trio's finalizer warns when it collects the generators.
    pytest.mark.filterwarnings("ignore:Async generator:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

MiB = 1024 * 1024
HUGE = 400 * MiB
CHUNK = 64 * 1024
#: What the kernel's socket buffers may hold beyond what the CLI read: generous, far below 400 MB.
SLACK = 32 * MiB
Body = Callable[["Hostile"], AsyncIterator[bytes]]


@dataclass
class Hostile:
    """What the hostile gateway did: bytes of body it sent, requests it got."""

    sent: int = 0
    requests: int = 0
    paths: list[str] = field(default_factory=list)


@asynccontextmanager
async def hostile_gateway(head: bytes, body: Body) -> AsyncIterator[tuple[str, Hostile]]:
    seen = Hostile()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
                seen.requests += 1
                seen.paths.append(data.split(b" ", 2)[1].decode())
                await stream.send(head)
                async with contextlib.aclosing(body(seen)) as chunks:
                    async for chunk in chunks:
                        await stream.send(chunk)
                        seen.sent += len(chunk)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield f"http://127.0.0.1:{port}", seen
        finally:
            tg.cancel_scope.cancel()


def json_head(length: int, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n").encode()


async def huge_json(_seen: Hostile) -> AsyncIterator[bytes]:
    """400 MB of ``[1,1,1,...`` made as it is sent."""
    piece = b"1," * (CHUNK // 2)
    yield b"[" + piece[1:]
    for _ in range(HUGE // CHUNK - 1):
        yield piece


async def gzip_bomb(_seen: Hostile) -> AsyncIterator[bytes]:
    """A gzip stream of 400 MB of zeros, compressed as it is sent (about 400 kB on the wire)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    for _ in range(HUGE // MiB):
        if out := compressor.compress(zeros):
            yield out
    yield compressor.flush()


async def drip(_seen: Hostile) -> AsyncIterator[bytes]:
    """A valid JSON list, one byte every 2 s: each read is quick, the whole never ends in time."""
    for byte in b'[{"name": "app", "status": "running"}' + b" " * 10_000 + b"]":
        yield bytes([byte])
        await anyio.sleep(2)  # the hostile gateway's pace, not a wait for anything in the test


API = {"RACK_GATEWAY_API_TOKEN": "rgw_token_bounded", "RACK_GATEWAY_URL": ""}


@pytest.mark.parametrize("command", ["apps", "test-auth"])
async def test_a_400_mb_answer_is_refused_after_the_cap_and_not_read_further(cli: Cli, command: str) -> None:
    async with hostile_gateway(json_head(HUGE), huge_json) as (url, seen):
        with anyio.fail_after(60):
            result = await cli(command, "--timeout", "30", env={**API, "RACK_GATEWAY_URL": url})
    assert result.code == 6, result.err
    assert result.err.splitlines()[0] == "Error: gateway sent more than 4 MiB; not reading the rest"
    assert seen.requests == 1  # a useless answer is not asked for again
    assert MAX_BODY <= seen.sent < MAX_BODY + SLACK


async def test_a_gzip_bomb_is_refused_at_the_cap_of_what_it_expands_to(cli: Cli) -> None:
    async with hostile_gateway(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        chunked(gzip_bomb),
    ) as (url, seen):
        with anyio.fail_after(60):
            result = await cli("apps", "--timeout", "30", env={**API, "RACK_GATEWAY_URL": url})
    assert result.code == 6, result.err
    assert result.err.splitlines()[0] == "Error: gateway sent more than 4 MiB; not reading the rest"
    assert seen.sent < 2 * MiB  # 4 MiB of zeros is a few kB of gzip: the rest was never asked for


def chunked(body: Body) -> Body:
    async def framed(seen: Hostile) -> AsyncIterator[bytes]:
        async with contextlib.aclosing(body(seen)) as chunks:
            async for chunk in chunks:
                if chunk:
                    yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
        yield b"0\r\n\r\n"

    return framed


@pytest.mark.parametrize("command", ["apps", "test-auth"])
async def test_an_answer_dripped_a_byte_at_a_time_ends_in_a_timeout_error_within_the_timeout(
    cli: Cli, command: str
) -> None:
    async with hostile_gateway(json_head(10_040), drip) as (url, seen):
        with anyio.fail_after(60):  # a hang fails here; the CLI's own --timeout is 3 s
            result = await cli(command, "--timeout", "3", env={**API, "RACK_GATEWAY_URL": url})
    assert result.code == 5, result.err
    errors = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: gateway {url.removeprefix('http://')} unreachable: timed out"]
    assert seen.sent < 100  # it stopped reading long before the body's 10 kB


PEAK_RSS = """
import atexit, re, sys
def report():
    status = open("/proc/self/status").read()
    sys.stderr.write("VmHWM " + re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1) + "\\n")
atexit.register(report)
sys.argv = ["rack-gateway", *sys.argv[1:]]
from rgw.cli import main
main()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_a_cli_process_reading_a_400_mb_answer_stays_under_200_mb(tmp_path: object) -> None:
    async with hostile_gateway(json_head(HUGE), huge_json) as (url, seen):
        env = {"RACK_GATEWAY_API_TOKEN": "rgw_token_bounded", "RACK_GATEWAY_URL": url, "PATH": "/usr/bin:/bin"}
        args = ["--config", f"{tmp_path}/config", "apps", "--timeout", "30"]
        with anyio.fail_after(90):
            done = await anyio.run_process([sys.executable, "-c", PEAK_RSS, *args], env=env, check=False)
    out, err = done.stdout.decode(), done.stderr.decode()
    WATCH.record(args, out, err, where="subprocess")
    assert done.returncode == 6, err
    assert "Error: gateway sent more than 4 MiB; not reading the rest" in err
    peak_kb = int(err.rsplit("VmHWM ", 1)[1].split()[0])
    assert peak_kb < 200 * 1024, f"peak RSS {peak_kb} kB"
    assert seen.sent < MAX_BODY + SLACK
