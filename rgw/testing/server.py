"""Run the reference gateway with uvicorn: in a background thread for tests, or in the foreground.

`running_gateway` binds the socket itself (so port 0 works and the URL is known before serving),
runs uvicorn on its own asyncio loop in a daemon thread, and returns once `GET /api/v1/health`
answers; on exit it wakes held long polls, asks uvicorn to stop and joins the thread.  It is a plain
context manager, so asyncio and trio tests can both use it.  `serve_forever` blocks the caller.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import uvicorn

from .gateway import Gateway, GatewaySettings, create_app

STARTUP_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 10.0


@dataclass(frozen=True)
class RunningGateway:
    """A gateway being served: its base URL, state and settings."""

    url: str
    gateway: Gateway
    settings: GatewaySettings
    server: uvicorn.Server


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (it checks sock.proto);
    # without it every small response waits ~40 ms for Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    host = host.strip("[]")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(gateway: Gateway) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(gateway=gateway), lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=5
    )
    return uvicorn.Server(config)


def _wait_healthy(url: str, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while True:
            try:
                if client.get(url + "/api/v1/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not thread.is_alive():
                raise RuntimeError("the reference gateway stopped during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the reference gateway did not answer within {timeout:.0f} s")
            thread.join(0.01)  # a short bounded pause between polls, ends early if the server died


@contextlib.contextmanager
def running_gateway(
    settings: GatewaySettings | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningGateway]:
    """Serve a new reference gateway on `host:port` (0 = any free port) for the `with` block."""
    settings = settings if settings is not None else GatewaySettings()
    gateway = Gateway(settings)
    sock = _bind(host, port)
    server = _server(gateway)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="rgw-gateway", daemon=True)
    url = _url(host, sock)
    thread.start()
    try:
        _wait_healthy(url, thread, STARTUP_TIMEOUT)
        yield RunningGateway(url, gateway, settings, server)
    finally:
        gateway.close()
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT)
        sock.close()
        gateway.store.close()


def serve_forever(
    settings: GatewaySettings | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    ready: Callable[..., None] | None = None,
    *,
    stop: threading.Event | None = None,
) -> None:
    """Serve a reference gateway in this thread until interrupted (or `stop` is set).

    `ready(url)` — or `ready(url, gateway)` when it takes two positional parameters — is called from a
    helper thread once `/api/v1/health` answers.  uvicorn runs its own asyncio loop here, so call this
    outside any running event loop.  In the main thread Ctrl-C stops the server and then propagates as
    KeyboardInterrupt; in another thread signals cannot reach uvicorn, so pass `stop` (or, from async
    code, prefer `with running_gateway(...) as gw:` and sleep until cancelled).
    """
    settings = settings if settings is not None else GatewaySettings()
    gateway = Gateway(settings)
    sock = _bind(host, port)
    server = _server(gateway)
    url = _url(host, sock)
    serving = threading.current_thread()

    def watch() -> None:
        try:
            _wait_healthy(url, serving, STARTUP_TIMEOUT)
        except RuntimeError:
            return
        if ready is not None:
            if _positional_arity(ready) >= 2:
                ready(url, gateway)
            else:
                ready(url)
        if stop is not None:
            while not stop.wait(0.1) and serving.is_alive() and not server.should_exit:
                pass
            server.should_exit = True

    threading.Thread(target=watch, name="rgw-gateway-ready", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        gateway.close()
        sock.close()
        gateway.store.close()


def _positional_arity(func: Callable[..., None]) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds)
