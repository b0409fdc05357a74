"""Run the reference gateway with uvicorn: in a background thread for tests, or in the foreground.

`running_gateway` binds the socket itself (so port 0 works and the URL is known before serving),
runs uvicorn on its own asyncio loop in a daemon thread, and returns once `GET /api/v1/health`
answers; on exit it wakes held long polls, asks uvicorn to stop and joins the thread.  It is a plain
context manager, so asyncio and trio tests can both use it.  `serving_gateway` serves on the caller's
asyncio loop instead, as a task of a task group (``dev-gateway``, ``demo``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
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
        _stop(server, thread)
        sock.close()
        gateway.store.close()


@contextlib.contextmanager
def running_app(app: Any, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve any ASGI ``app`` (a hostile gateway in a test) on a free loopback port; yields its URL.

    The socket is bound and listening before the server thread starts, so the URL accepts
    connections at once (the kernel queues them until uvicorn takes over).
    """
    sock = _bind(host, 0)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="rgw-app", daemon=True)
    thread.start()
    try:
        yield _url(host, sock)
    finally:
        _stop(server, thread)
        sock.close()


def _stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Ask uvicorn in ``thread`` to shut down; force it when it does not within the timeout."""
    server.should_exit = True
    thread.join(SHUTDOWN_TIMEOUT)
    if thread.is_alive():
        server.force_exit = True
        thread.join(SHUTDOWN_TIMEOUT)


class _Server(uvicorn.Server):
    """uvicorn on the caller's event loop: says when it is serving, leaves signals to the CLI."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.serving = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self.serving.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # Ctrl-C cancels the command's task group; uvicorn must not swallow it


@contextlib.asynccontextmanager
async def serving_gateway(
    settings: GatewaySettings | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningGateway]:
    """Serve a reference gateway on this (asyncio) event loop for the ``async with`` block.

    uvicorn runs as a task of a task group; the block starts once uvicorn says it is serving (its
    startup event, no polling), and leaving it asks uvicorn to shut down and waits for it.
    ``dev-gateway`` and ``demo`` use this; thread-based ``running_gateway`` serves tests on any backend.
    """
    settings = settings if settings is not None else GatewaySettings()
    gateway = Gateway(settings)
    sock = _bind(host, port)
    server = _Server(
        uvicorn.Config(
            create_app(gateway=gateway),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(STARTUP_TIMEOUT):
                await server.serving.wait()
            try:
                yield RunningGateway(_url(host, sock), gateway, settings, server)
            finally:
                gateway.close()  # wakes held long polls
                server.should_exit = True
    finally:
        sock.close()
        gateway.store.close()
