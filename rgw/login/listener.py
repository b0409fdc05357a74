"""The loopback listener that the browser hits when the gateway is done with it.

``CallbackListener.serve`` binds 127.0.0.1 (and ::1 on the same port when it can) on a random port
under one unguessable path, and answers ``GET <path>?state=..&result=ok|error[&error=..]``: the state
is compared in constant time with every login registered through ``expect``; a match wakes that
login's ``CallbackWaiter`` and shows a small page naming the rack and this terminal (host name and
process id) and saying the tab may be closed; it loads nothing from anywhere.  The hit carries no secret (the
CLI still redeems the login with ``/complete``), so the listener's job is to be cheap to abuse:
everything else (other paths, methods, states, foreign Host headers, oversized or malformed or slow
requests, connection floods) is answered with an error or simply closed, without waking anyone and
without stopping the listener.  HTTP is parsed with h11; one request per connection.

A multi-rack login ``attach``es its one-tab walk (``rgw.login.walk``): the listener then also serves
the walk's page on the walk's own path, and answers a walked rack's callback, instead of the rack's
own page, with a hop page that moves on to the next rack's sign-in (or back to the walk's page) with
``<meta http-equiv=refresh content="0;url=...">`` (no script; its policy is the other pages'): a new
navigation each time, never a 302, so a walk of many racks is never one chain of redirects that a
browser cuts off (Chromium stops at 20).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import ipaddress
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qs, quote, urlsplit

import anyio
import anyio.abc
import anyio.streams.stapled
import h11
from anyio.abc import SocketAttribute

from rgw.models import CallbackResult
from rgw.text import find_secret, printable

if TYPE_CHECKING:
    from rgw.login.walk import LoginWalk

__all__ = ["CallbackListener", "CallbackWaiter", "StateTaken"]

_REASONS = {
    200: b"OK",
    302: b"Found",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    421: b"Misdirected Request",
    431: b"Request Header Fields Too Large",
}
_MAX_ERROR_TEXT = 300
_LINGER_BYTES = 65536
_RECEIVE_CHUNK = 4096
_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;background:#f3f4f6;color:#111;margin:0}"
    "main{max-width:32em;margin:3em auto;padding:1.5em 2em;background:#fff;border-radius:8px;"
    "box-shadow:0 1px 4px #0002}"
    "h1{font-size:1.35em;margin:.1em 0 .7em}.rack{margin:0;color:#555;font-size:.9em}"
    "code{white-space:nowrap}.close{font-weight:600}.error{color:#b91c1c;font-weight:600}"
)
# The page's only style, allowed by hash: the policy stays default-src 'none' for everything else.
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
_POLICY = f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; frame-ancestors 'none'"


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    #: The login whose browser hit this was (its ``wait_served`` is released once it is sent).
    waiter: CallbackWaiter | None = None
    location: str | None = None
    content_type: str = "text/html; charset=utf-8"
    policy: str = _POLICY
    #: Called once the answer has been sent (or sending it failed).
    after_send: Callable[[], None] | None = None


class StateTaken(ValueError):
    """``expect``: another login (of rack ``rack``) already waits on this state."""

    def __init__(self, rack: str) -> None:
        super().__init__("this state is already expected")
        self.rack = rack


class CallbackWaiter:
    """One login waiting for its browser hit; ``result`` is set (once) when the hit arrives."""

    def __init__(self, state: str, rack: str) -> None:
        self.state = state
        self.rack = rack
        self.result: CallbackResult | None = None
        self._event = anyio.Event()
        self._served = anyio.Event()

    async def wait(self) -> CallbackResult:
        """Return the browser's result as soon as the listener has heard it."""
        await self._event.wait()
        assert self.result is not None  # set before the event, never cleared
        return self.result

    async def wait_served(self) -> None:
        """Return once the browser that delivered the result has been sent its page."""
        await self._served.wait()

    def _deliver(self, result: CallbackResult) -> None:
        if self.result is None:  # a refreshed page must not change what the login already heard
            self.result = result
            self._event.set()


class CallbackListener:
    """HTTP listener on loopback that turns a browser redirect into a ``CallbackResult``.

    One listener can serve many logins at once (``expect`` one per state).  Timeouts and limits are
    parameters: ``header_timeout`` bounds reading a request (slowloris), ``max_request_bytes`` bounds
    the request line and headers, ``max_connections`` bounds concurrently open connections.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        hosts: Sequence[str] = ("127.0.0.1", "::1"),
        max_request_bytes: int = 8192,
        header_timeout: float = 5.0,
        max_connections: int = 64,
        terminal: str | None = None,
        aliases: Sequence[str] = (),
    ) -> None:
        if not hosts:
            raise ValueError("at least one loopback host is required")
        for host in hosts:
            _require_loopback(host)
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid port: {port}")
        if max_request_bytes < 256 or header_timeout <= 0 or max_connections < 1:
            raise ValueError("max_request_bytes >= 256, header_timeout > 0 and max_connections >= 1")
        self._port = port
        self._hosts = tuple(hosts)
        self._max_request_bytes = max_request_bytes
        self._header_timeout = header_timeout
        self._max_connections = max_connections
        #: How the page names this terminal: the host name and this process's id.
        self.terminal = terminal or f"{socket.gethostname()} (process {os.getpid()})"
        self._path = "/" + secrets.token_urlsafe(16)
        #: Callback paths of an earlier listener on this port (its resumed logins' gateways use them).
        self._aliases = tuple(a for a in aliases if a.startswith("/") and len(a) >= 17 and a != self._path)
        self._waiters: dict[str, CallbackWaiter] = {}
        self._bound_host: str | None = None
        self._bound_port: int | None = None
        self._allowed_hosts: frozenset[bytes] = frozenset()
        self._active = 0
        self._serving = False
        #: The one-tab walk of a multi-rack login, served on its own path (``attach``).
        self.walk: LoginWalk | None = None

    @property
    def uri(self) -> str:
        """``http://127.0.0.1:PORT/<path>``: the bound address, never ``localhost``."""
        if self._bound_host is None or self._bound_port is None:
            raise RuntimeError("the callback listener is not bound yet; await tg.start(listener.serve)")
        return f"http://{_host_in_url(self._bound_host)}:{self._bound_port}{self._path}"

    @property
    def port(self) -> int | None:
        return self._bound_port

    @property
    def active_connections(self) -> int:
        """Connections being handled right now (for tests and diagnostics)."""
        return self._active

    def serves(self, uri: str) -> bool:
        """Whether a browser sent to ``uri`` (an earlier listener's, say) reaches this listener's callback."""
        if self._bound_port is None:
            return False
        parts = urlsplit(uri)
        try:
            port = parts.port
        except ValueError:
            return False
        same = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")
        return same and port == self._bound_port and self._is_callback_path(parts.path)

    def _is_callback_path(self, path: str) -> bool:
        found = False
        for candidate in (self._path, *self._aliases):  # every one compared: timing tells nothing
            found |= hmac.compare_digest(path.encode(), candidate.encode())
        return found

    def attach(self, walk: LoginWalk) -> str:
        """Serve ``walk``'s page on its path too; returns the page's address (once bound)."""
        if walk.path == self._path:
            raise ValueError("the walk needs a path of its own")
        self.walk = walk
        return self.uri.removesuffix(self._path) + walk.path

    def expect(self, state: str, rack: str) -> CallbackWaiter:
        """Register a login; the returned waiter wakes when the browser hit for ``state`` arrives.

        Call it from the event loop that runs ``serve`` (the waiter holds an anyio Event).
        """
        if not state:
            raise ValueError("state must not be empty")
        if state in self._waiters:
            raise StateTaken(self._waiters[state].rack)
        waiter = CallbackWaiter(state, rack)
        self._waiters[state] = waiter
        return waiter

    def forget(self, state: str) -> None:
        """Stop expecting ``state``; later hits for it are rejected like unknown states."""
        self._waiters.pop(state, None)

    async def serve(self, *, task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind, report ``uri`` through ``task_status``, then serve until cancelled."""
        if self._serving:
            raise RuntimeError("this callback listener is already serving")
        self._serving = True
        listeners: list[anyio.abc.SocketListener] = []
        try:
            first = await anyio.create_tcp_listener(local_host=self._hosts[0], local_port=self._port)
            listeners.extend(_socket_listeners(first))
            port = int(first.extra(SocketAttribute.local_port))  # noqa: S610 (anyio, not Django)
            for host in self._hosts[1:]:
                try:  # ::1 is a bonus: a machine without IPv6 (or with the port taken there) still works
                    extra = await anyio.create_tcp_listener(local_host=host, local_port=port)
                except OSError:
                    continue
                listeners.extend(_socket_listeners(extra))
            self._bound_host, self._bound_port = self._hosts[0], port
            self._allowed_hosts = _allowed_host_headers(port)
            async with anyio.create_task_group() as tg:
                for listener in listeners:
                    tg.start_soon(self._accept_loop, listener, tg)
                task_status.started(self.uri)
        finally:
            with anyio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()
            self._bound_host = self._bound_port = None
            self._serving = False

    async def _accept_loop(self, listener: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError:  # e.g. out of file descriptors: back off instead of spinning or dying
                await anyio.sleep(0.05)
                continue
            if self._active >= self._max_connections:
                await stream.aclose()
                continue
            self._active += 1
            tg.start_soon(self._handle_connection, stream)

    async def _handle_connection(self, stream: anyio.abc.SocketStream) -> None:
        try:
            async with stream:
                await self._converse(stream)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            pass  # the peer went away; nothing to tell anyone
        finally:
            self._active -= 1

    async def _converse(self, stream: anyio.abc.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_request_bytes)
        request: h11.Request | None = None
        status: int | None = None
        with anyio.move_on_after(self._header_timeout):
            try:
                request = await _receive_request(conn, stream)
            except h11.RemoteProtocolError as exc:
                status = 431 if exc.error_status_hint == 431 else 400
        if request is None and status is None:
            return  # timed out (slowloris) or the client left before finishing its request
        if request is not None:
            reply = await self._answer(request)
        else:
            assert status is not None
            reply = _Reply(status, _page("Bad request", "This request could not be read."))
        try:
            with anyio.move_on_after(self._header_timeout):
                await stream.send(_response(reply))
                await _linger_close(stream)
        finally:
            if reply.waiter is not None:
                reply.waiter._served.set()
            if reply.after_send is not None:
                reply.after_send()

    async def _answer(self, request: h11.Request) -> _Reply:
        host = _header(request, b"host")
        if host is None or host.lower() not in self._allowed_hosts:
            # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
            return _Reply(421, _page("Wrong host", "This address only answers to the loopback host."))
        target = request.target.decode("ascii", "replace")
        parts = urlsplit(target)
        walk = self.walk
        if walk is not None and _has_prefix(parts.path, walk.path):
            if request.method != b"GET":
                return _Reply(405, _page("Method not allowed", "Only GET is accepted here."))
            return await _answer_walk(walk, parts.path[len(walk.path) :])
        if not self._is_callback_path(parts.path):
            return _Reply(404, _page("Not found", "Nothing here."))
        if request.method != b"GET":
            return _Reply(405, _page("Method not allowed", "Only GET is accepted here."))
        return await self._answer_callback(parts.query)

    async def _answer_callback(self, query_text: str) -> _Reply:
        """The gateway's redirect: wake the waiting login (its state matched), show the result page."""
        invalid = _Reply(400, _page("Invalid login link", "This login link is not valid. Check your terminal."))
        try:
            query = parse_qs(query_text, keep_blank_values=True, max_num_fields=8)
        except ValueError:
            return invalid
        states, results = query.get("state", []), query.get("result", [])
        if len(states) != 1 or len(results) != 1 or results[0] not in ("ok", "error"):
            return invalid
        walk = self.walk
        waiter = self._match(states[0])
        walked = walk is not None and walk.owns(states[0])
        if waiter is None and not walked:
            return invalid
        error = (query.get("error") or ["unknown error"])[0][:_MAX_ERROR_TEXT] or "unknown error"
        if waiter is not None:
            ok = results[0] == "ok"
            waiter._deliver(CallbackResult(state=waiter.state, ok=ok, error=None if ok else error))
        if walk is not None and walked:
            # One tab for many racks: on to the next rack's sign-in (or back to the list), by a page
            # that starts a new navigation, so the racks' redirects never add up to one chain.
            location = _safe_location(await walk.after_callback(states[0]))
            if location is not None:
                return _Reply(200, _hop_page(location), waiter, after_send=walk.viewed)
        assert waiter is not None
        return _Reply(200, self._result_page(waiter, results[0] == "ok", error), waiter)

    def _result_page(self, waiter: CallbackWaiter, ok: bool, error: str) -> bytes:
        rack = html.escape(printable(waiter.rack))
        where = f"The terminal running <code>rack-gateway login</code> on <strong>{html.escape(self.terminal)}</strong>"
        if ok:
            return _page(f"Logged in to rack {rack}", f"{where} has the session.", result=True)
        return _page(
            f"Login to rack {rack} failed",
            f"{where} has the details.",
            result=True,
            error=html.escape(printable(error)),
        )

    def _match(self, state: str) -> CallbackWaiter | None:
        """Compare with every expected state in constant time, so timing tells nothing about them."""
        return find_secret(state, list(self._waiters.items()))


async def _answer_walk(walk: LoginWalk, path: str) -> _Reply:
    """A page of the one-tab walk (``rgw.login.walk``): its answer, or 404."""
    answer = await walk.respond(path)
    location = _safe_location(answer.location) if answer is not None else None
    if answer is not None and answer.location is not None and location is None:
        answer = None  # never a header that could be split: no URL of ours looks like that
    if answer is None:
        return _Reply(404, _page("Not found", "Nothing here."))
    return _Reply(
        answer.status,
        answer.body,
        location=location,
        content_type=answer.content_type,
        policy=answer.policy,
        after_send=lambda: walk.viewed(answer),
    )


async def _receive_request(conn: h11.Connection, stream: anyio.abc.SocketStream) -> h11.Request | None:
    """Read until h11 has a full request line and headers; ``None`` if the client leaves first."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive(_RECEIVE_CHUNK)
            except anyio.EndOfStream:
                data = b""
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            return event
        else:  # ConnectionClosed (or PAUSED, which cannot happen before a request)
            return None


async def _linger_close(stream: anyio.abc.SocketStream) -> None:
    """Half-close, then read what the client is still sending, so closing does not reset the answer."""
    await stream.send_eof()
    drained = 0
    while drained < _LINGER_BYTES:
        try:
            drained += len(await stream.receive(_RECEIVE_CHUNK))
        except anyio.EndOfStream:
            return


async def serve_listener(tg: anyio.abc.TaskGroup, *, port: int = 0, previous: Sequence[str] = ()) -> CallbackListener:
    """Start a listener in ``tg``: on ``port``, or (``port`` 0) on the port of the ``previous``
    listeners' URIs, answering their paths too, when that port is free; else on a random port.

    ``OSError`` when ``port`` (or, with none, any port) cannot be bound.
    """
    if not port:
        parsed = [urlsplit(uri) for uri in previous]
        ports = [p for p in map(_port_of, parsed) if p]
        if ports:
            old = ports[0]
            listener = CallbackListener(port=old, aliases=[p.path for p in parsed if _port_of(p) == old])
            try:
                await tg.start(listener.serve)
            except OSError:
                pass  # taken since: the resumed logins finish by polling alone
            else:
                return listener
    listener = CallbackListener(port=port)
    await tg.start(listener.serve)
    return listener


def _port_of(uri: SplitResult) -> int | None:
    """A previous listener's port, None when there is none or it is not one (a planted ``:99999``)."""
    try:
        port = uri.port
    except ValueError:
        return None
    return port if port is not None and 0 < port <= 65535 else None


def _socket_listeners(
    multi: anyio.streams.stapled.MultiListener[anyio.abc.SocketStream],
) -> list[anyio.abc.SocketListener]:
    found = [listener for listener in multi.listeners if isinstance(listener, anyio.abc.SocketListener)]
    if len(found) != len(multi.listeners):
        raise TypeError("anyio returned a listener that is not a socket listener")
    return found


def _require_loopback(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the callback listener binds loopback IP addresses only, not {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"the callback listener binds loopback addresses only, not {host!r}")


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _allowed_host_headers(port: int) -> frozenset[bytes]:
    return frozenset(f"{name}:{port}".encode() for name in ("127.0.0.1", "[::1]", "localhost"))


def _header(request: h11.Request, name: bytes) -> bytes | None:
    values = [value for key, value in request.headers if key == name]
    return values[0] if len(values) == 1 else None


def _page(title: str, message: str, *, result: bool = False, error: str | None = None) -> bytes:
    """A minimal page; callers escape anything that came from outside.

    A login's ``result`` page also says the tab may be closed; ``error`` comes first, in red.
    """
    close = '<p class="close">You can close this tab.</p>' if result else ""
    problem = f'<p class="error">{error}</p>' if error is not None else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>rack-gateway: {title}</title><style>{_STYLE}</style></head>"
        f'<body><main><p class="rack">rack-gateway</p><h1>{title}</h1>{problem}<p>{message}</p>{close}'
        "</main></body></html>\n"
    ).encode()


def _hop_page(location: str) -> bytes:
    """The walk's hop: a page that moves on to ``location`` at once, without script (a new
    navigation, where a 302 would add to the chain of redirects), with a link in case it does not."""
    where = html.escape(location)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={where}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>rack-gateway: on to the next sign-in</title><style>{_STYLE}</style></head>"
        '<body><main><p class="rack">rack-gateway</p><h1>On to the next sign-in</h1>'
        f'<p>If this page stays, <a href="{where}">continue here</a>.</p></main></body></html>\n'
    ).encode()


def _response(reply: _Reply) -> bytes:
    headers = [
        ("Content-Type", reply.content_type),
        ("Content-Length", str(len(reply.body))),
        ("Connection", "close"),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", reply.policy),
    ]
    if reply.status == 405:
        headers.append(("Allow", "GET"))
    if reply.location is not None:
        headers.append(("Location", reply.location))
    head = b"HTTP/1.1 %d %s\r\n" % (reply.status, _REASONS[reply.status])
    head += b"".join(f"{name}: {value}\r\n".encode() for name, value in headers)
    return head + b"\r\n" + reply.body


def _safe_location(location: str | None) -> str | None:
    """``location`` fit for a ``Location`` header: non-ASCII percent-encoded; None when it has
    whitespace or control characters (it would end the header), which no checked URL has."""
    if location is None or any(c.isspace() or not c.isprintable() for c in location):
        return None
    return "".join(c if c.isascii() else quote(c) for c in location)


def _has_prefix(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it; the secret part compared in constant time."""
    head = path[: len(prefix)]
    return hmac.compare_digest(head.encode(), prefix.encode()) and (
        len(path) == len(prefix) or path[len(prefix)] == "/"
    )
