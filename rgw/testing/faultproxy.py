"""A fault-injecting HTTP proxy that plays a flaky VPN between a client and a gateway on loopback.

``FaultProxy(upstream, FaultPlan(...))`` listens on loopback and forwards every request to
``upstream`` on a fresh upstream connection (``Connection: close`` upstream; nothing else rewritten but
hop-by-hop headers and body framing), while the client keeps its own keep-alive connection.  Because it
parses HTTP (h11), it acts per request on keep-alive connections: it resets new connections, answers 503
itself, delays responses, drops responses after upstream handled the request, and plays blackouts in
which the link hangs or resets everything, existing connections included.  It runs its own asyncio loop
in a daemon thread, so asyncio tests, trio tests and synchronous benchmarks use it alike::

    with FaultProxy(gateway_url, FaultPlan(error_rate=0.2, seed=1)) as proxy:
        client = GatewayClient(proxy.url, ...)
        proxy.blackout(2.0)

Decisions come from one ``random.Random(plan.seed)``: one draw per new connection and three per request
(error, drop, jitter), whatever the outcome, so a seeded plan with a sequential client replays exactly.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute
from anyio.from_thread import BlockingPortal

__all__ = ["BlackoutMode", "FaultPlan", "FaultProxy", "ProxyStats"]

BlackoutMode = Literal["hang", "reset"]

_NETWORK_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"content-length",  # bodies are buffered, so framing is recomputed
    }
)
_RECEIVE_CHUNK = 65536
_MAX_BODY = 16 * 1024 * 1024

Headers = list[tuple[bytes, bytes]]


@dataclass
class FaultPlan:
    """What goes wrong, and how often.  Rates are fractions in [0, 1]; times are seconds."""

    reset_rate: float = 0.0  # new connections reset at once (RST)
    error_rate: float = 0.0  # requests answered 503 by the proxy, never forwarded
    delay: float = 0.0  # added before sending each response ...
    jitter: float = 0.0  # ... plus uniform(-jitter, +jitter), floored at 0
    drop_response_rate: float = 0.0  # forwarded and handled upstream, then the response is lost (RST)
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("reset_rate", "error_rate", "drop_response_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delay and jitter must not be negative")


@dataclass
class ProxyStats:
    """Counters, updated by the proxy thread; read them any time (``snapshot`` for a stable copy)."""

    connections: int = 0  # client connections accepted
    requests: int = 0  # complete requests read from clients
    forwarded: int = 0  # requests upstream answered
    resets: int = 0  # client connections the proxy reset, for any reason
    errors_503: int = 0  # injected 503s
    errors_502: int = 0  # upstream refused or broke: 502
    errors_504: int = 0  # upstream did not answer within upstream_timeout: 504
    dropped: int = 0  # responses lost after upstream handled the request
    during_blackout: int = 0  # connections or requests that hit a blackout
    delay_total: float = 0.0  # seconds of injected delay, summed

    def snapshot(self) -> ProxyStats:
        return replace(self)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Headers
    body: bytes
    reason: bytes = b""


class FaultProxy:
    """The proxy.  ``with FaultProxy(...) as proxy`` returns once ``proxy.url`` is bound."""

    def __init__(
        self,
        upstream: str,
        plan: FaultPlan | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_timeout: float = 60.0,
        connect_timeout: float = 5.0,
        start_timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL with a host, not {upstream!r}")
        self.upstream = upstream
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self._upstream_netloc = parts.netloc.encode()
        self._host = host
        self._port = port
        self._upstream_timeout = upstream_timeout
        self._connect_timeout = connect_timeout
        self._start_timeout = start_timeout
        self._plan = plan or FaultPlan()
        self._rng = random.Random(self._plan.seed)
        self.stats = ProxyStats()
        self._blackout: tuple[float, BlackoutMode] = (0.0, "hang")
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._portal: BlockingPortal | None = None
        self._scope: anyio.CancelScope | None = None
        self._failure: BaseException | None = None

    # -- public API -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: where clients should connect."""
        if self._url is None:
            raise RuntimeError("the fault proxy is not running; use `with FaultProxy(...) as proxy`")
        return self._url

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        """Replace the plan at runtime; a plan with a seed also restarts the random sequence."""
        if plan.seed is not None:
            self._rng = random.Random(plan.seed)
        self._plan = plan

    def blackout(self, seconds: float, *, mode: BlackoutMode = "hang") -> None:
        """From now for ``seconds``: ``hang`` (accept, never answer, close at the end) or ``reset``.

        Existing keep-alive connections are affected too: a request sent, or a response coming back,
        during the blackout meets the same fate.  A new call replaces the current blackout.
        """
        if mode not in ("hang", "reset"):
            raise ValueError(f"blackout mode must be 'hang' or 'reset', not {mode!r}")
        if seconds < 0:
            raise ValueError("blackout seconds must not be negative")
        self._blackout = (time.monotonic() + seconds, mode)

    @property
    def blackout_remaining(self) -> float:
        """Seconds until the current blackout ends (0 when there is none)."""
        return max(0.0, self._blackout[0] - time.monotonic())

    @property
    def blackout_active(self) -> bool:
        return self.blackout_remaining > 0

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("the fault proxy was already started")
        self._thread = threading.Thread(target=self._run_loop, name="rgw-fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise RuntimeError("the fault proxy did not start in time")
        if self._failure is not None:
            raise RuntimeError(f"the fault proxy failed to start: {self._failure!r}") from self._failure
        return self

    def close(self) -> None:
        """Stop serving, close every connection, and wait for the thread (re-raising a crash)."""
        thread, portal, scope = self._thread, self._portal, self._scope
        if thread is None:
            return
        if portal is not None and scope is not None and thread.is_alive():
            # RuntimeError: the loop already ended (it crashed); the failure is raised below.
            with contextlib.suppress(RuntimeError):
                portal.call(scope.cancel)
        thread.join(self._start_timeout)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise RuntimeError(f"the fault proxy crashed: {failure!r}") from failure

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except RuntimeError:
            if exc is None:  # never mask the exception that is already leaving the block
                raise

    # -- the loop thread --------------------------------------------------------------------------

    def _run_loop(self) -> None:
        try:
            anyio.run(self._serve, backend="asyncio")
        except BaseException as exc:  # reported in the caller's thread by close()
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        async with BlockingPortal() as portal:
            listener = await anyio.create_tcp_listener(local_host=self._host, local_port=self._port)
            async with listener, anyio.create_task_group() as tg:
                port = listener.extra(SocketAttribute.local_port)  # noqa: S610 (anyio, not Django)
                host = f"[{self._host}]" if ":" in self._host else self._host
                self._url = f"http://{host}:{port}"
                self._portal, self._scope = portal, tg.cancel_scope
                self._ready.set()
                await listener.serve(self._handle_client, task_group=tg)

    async def _handle_client(self, client: anyio.abc.SocketStream) -> None:
        self.stats.connections += 1
        try:
            async with client:
                await self._relay(client)
        except _NETWORK_ERRORS:
            pass  # the client went away; that is what flaky links do

    async def _relay(self, client: anyio.abc.SocketStream) -> None:
        if await self._blackout_took(client):
            return
        if self._rng.random() < self._plan.reset_rate:
            await self._reset(client)
            return
        conn = h11.Connection(h11.SERVER)
        while True:
            try:
                received = await _read_message(conn, client)
            except h11.RemoteProtocolError as exc:
                await client.send(_raw_error(exc.error_status_hint))
                return
            if received is None:
                return
            request, body = received
            assert isinstance(request, h11.Request)
            self.stats.requests += 1
            plan = self._plan
            error_draw, drop_draw, jitter_draw = self._rng.random(), self._rng.random(), self._rng.random()
            delay = max(0.0, plan.delay + (2 * jitter_draw - 1) * plan.jitter)
            if await self._blackout_took(client):
                return
            if error_draw < plan.error_rate:
                self.stats.errors_503 += 1
                answer = _proxy_answer(503, b"Service Unavailable", b"fault proxy: injected 503\n")
            else:
                answer, forwarded = await self._forward(request, body)
                if forwarded and drop_draw < plan.drop_response_rate:
                    self.stats.dropped += 1
                    await self._reset(client)
                    return
            if delay > 0:
                self.stats.delay_total += delay
                await anyio.sleep(delay)
            if await self._blackout_took(client):  # the link went dark while the request was away
                return
            await client.send(_encode_response(conn, request, answer))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # Connection: close (either side); closing the stream ends it
            conn.start_next_cycle()

    async def _forward(self, request: h11.Request, body: bytes) -> tuple[_Answer, bool]:
        """Send one request upstream on a fresh connection; the answer, and whether upstream gave it."""
        try:
            with anyio.fail_after(self._connect_timeout):
                upstream = await anyio.connect_tcp(self._upstream_host, self._upstream_port)
        except (OSError, TimeoutError):
            self.stats.errors_502 += 1
            return _proxy_answer(502, b"Bad Gateway", b"fault proxy: upstream unreachable\n"), False
        conn = h11.Connection(h11.CLIENT)
        headers = _end_to_end(request.headers)
        if not any(name == b"host" for name, _ in headers):
            headers.append((b"host", self._upstream_netloc))
        if body or _has_body_framing(request.headers):
            headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"connection", b"close"))
        chunks = [conn.send(h11.Request(method=request.method, target=request.target, headers=headers))]
        if body:
            chunks.append(conn.send(h11.Data(data=body)))
        chunks.append(conn.send(h11.EndOfMessage()))
        outgoing = b"".join(chunk or b"" for chunk in chunks)
        received: tuple[h11.Request | h11.Response, bytes] | None = None
        try:
            async with upstream:
                with anyio.move_on_after(self._upstream_timeout) as scope:
                    await upstream.send(outgoing)
                    received = await _read_message(conn, upstream)
        except (*_NETWORK_ERRORS, h11.RemoteProtocolError):
            received = None
        else:
            if scope.cancelled_caught:
                self.stats.errors_504 += 1
                return _proxy_answer(504, b"Gateway Timeout", b"fault proxy: upstream timed out\n"), False
        if received is None:
            self.stats.errors_502 += 1
            return _proxy_answer(502, b"Bad Gateway", b"fault proxy: upstream broke the connection\n"), False
        response, response_body = received
        assert isinstance(response, h11.Response)
        self.stats.forwarded += 1
        answer = _Answer(response.status_code, _end_to_end(response.headers), response_body, response.reason)
        if _bodiless(request, response.status_code):
            # HEAD / 204 / 304: keep upstream's Content-Length, which describes a body never sent.
            length = [(n, v) for n, v in response.headers if n == b"content-length"]
            answer = replace(answer, headers=answer.headers + length[:1], body=b"")
        return answer, True

    async def _blackout_took(self, client: anyio.abc.SocketStream) -> bool:
        """If the link is dark, hang until it comes back or reset now; True when the client is done."""
        until, mode = self._blackout
        if time.monotonic() >= until:
            return False
        self.stats.during_blackout += 1
        if mode == "reset":
            await self._reset(client)
            return True
        await _sleep_until(lambda: self._blackout[0])
        return True

    async def _reset(self, stream: anyio.abc.SocketStream) -> None:
        """Close with RST instead of FIN (SO_LINGER 0): what a broken VPN path looks like."""
        self.stats.resets += 1
        sock: socket.socket = stream.extra(SocketAttribute.raw_socket)  # noqa: S610 (anyio, not Django)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()


async def _sleep_until(deadline: Callable[[], float]) -> None:
    """Sleep until ``deadline()`` (``time.monotonic`` seconds), which another thread may move."""
    while True:
        remaining = deadline() - time.monotonic()
        if remaining <= 0:
            return
        await anyio.sleep(remaining)


async def _read_message(
    conn: h11.Connection, stream: anyio.abc.SocketStream
) -> tuple[h11.Request | h11.Response, bytes] | None:
    """Read one whole request or response (body buffered); ``None`` if the peer closed before one."""
    head: h11.Request | h11.Response | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                await stream.send(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
            try:
                data = await stream.receive(_RECEIVE_CHUNK)
            except anyio.EndOfStream:
                data = b""
            conn.receive_data(data)
        elif isinstance(event, h11.Request | h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > _MAX_BODY:
                raise h11.RemoteProtocolError("body too large for the fault proxy", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            if head is not None:  # closed in the middle of a message
                raise h11.RemoteProtocolError("peer closed in the middle of a message")
            return None
        elif event is h11.PAUSED:  # cannot happen: we stop at EndOfMessage
            return None
        # An InformationalResponse (100 Continue from upstream) needs nothing from us.


def _end_to_end(headers: Sequence[tuple[bytes, bytes]]) -> Headers:
    """Drop hop-by-hop headers, including those the Connection header names."""
    dropped = _HOP_BY_HOP | {
        token.strip().lower() for name, value in headers if name.lower() == b"connection" for token in value.split(b",")
    }
    return [(name, value) for name, value in headers if name.lower() not in dropped]


def _has_body_framing(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in headers)


def _bodiless(request: h11.Request, status: int) -> bool:
    return request.method == b"HEAD" or status in (204, 304) or status < 200


def _proxy_answer(status: int, reason: bytes, body: bytes) -> _Answer:
    return _Answer(status, [(b"content-type", b"text/plain; charset=utf-8")], body, reason)


def _encode_response(conn: h11.Connection, request: h11.Request, answer: _Answer) -> bytes:
    headers = list(answer.headers)
    bodiless = _bodiless(request, answer.status)
    if not bodiless:
        headers.append((b"content-length", str(len(answer.body)).encode()))
    out = conn.send(h11.Response(status_code=answer.status, headers=headers, reason=answer.reason)) or b""
    if answer.body and not bodiless:
        out += conn.send(h11.Data(data=answer.body)) or b""
    return out + (conn.send(h11.EndOfMessage()) or b"")


def _raw_error(status: int) -> bytes:
    """An answer for a client whose request h11 could not parse (its connection is unusable)."""
    return b"HTTP/1.1 %d Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % status
