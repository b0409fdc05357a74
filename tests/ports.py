"""Loopback ports that refuse connections, safe beside other test processes (pytest-xdist).

A port found by binding and closing a socket is free again at once: a server another test starts
meanwhile may be given it, and a test that expected "connection refused" meets that server instead.
These ports stay bound (never listened on) until the test process ends, so nothing else gets them.
"""

from __future__ import annotations

import atexit
import socket

_HELD: list[socket.socket] = []


@atexit.register
def _release() -> None:
    while _HELD:
        _HELD.pop().close()


def refused_port() -> int:
    """A loopback port that refuses connections for the rest of this test process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


def refused_url() -> str:
    """``http://127.0.0.1:<refused_port()>``."""
    return f"http://127.0.0.1:{refused_port()}"
