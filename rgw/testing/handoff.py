"""Handing the CLI's sign-in URL to a browser that a test drives (``$BROWSER`` for headless Chromium).

``rack-gateway login`` opens its URL with Python's ``webbrowser``, which runs ``$BROWSER``.  A test
that owns a browser session (Selenium, DevTools) runs a ``UrlInbox``: a tiny HTTP endpoint on
127.0.0.1 (random port, unguessable path) served from a background thread.  ``inbox.browser_command()``
is the ``$BROWSER`` value for the CLI subprocess: it runs ``python -m rgw.testing.handoff PORT PATH
<sign-in URL>``, which posts the URL to the inbox and exits 0 (the CLI counts the browser as opened),
or 1 when the inbox cannot be reached.  (``$BROWSER`` is a ``:``-separated list of commands, so the
inbox's address is passed without a colon.)  ``inbox.next_url(timeout)`` returns the URLs in the order they
came; the test then points its browser at each.  Nothing waits a fixed time.
"""

from __future__ import annotations

import queue
import secrets
import shlex
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

MAX_URL_BYTES = 16384
POST_TIMEOUT = 10.0


class _Handler(BaseHTTPRequestHandler):
    server: _InboxServer

    def do_POST(self) -> None:
        inbox = self.server.inbox
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != inbox.path or not 0 < length <= MAX_URL_BYTES:
            self.send_error(404 if self.path != inbox.path else 413)
            return
        url = self.rfile.read(length).decode("utf-8", "replace").strip()
        inbox.deliver(url)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: a test's output is its own


class _InboxServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, inbox: UrlInbox) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.inbox = inbox


class UrlInbox:
    """Receives the URLs a ``$BROWSER`` command hands over; a context manager (serves inside ``with``)."""

    def __init__(self) -> None:
        self.path = "/" + secrets.token_urlsafe(16)
        self.received: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._server: _InboxServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> UrlInbox:
        self._server = _InboxServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="rgw-url-inbox", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the inbox is not serving: use it as a context manager")
        return int(self._server.server_address[1])

    def browser_command(self, python: str = sys.executable) -> str:
        """The ``$BROWSER`` value that hands each URL to this inbox (no ``:`` in it, see above)."""
        if ":" in python:
            raise ValueError(f"$BROWSER cannot hold a path with ':' in it: {python}")
        return f"{shlex.quote(python)} -m rgw.testing.handoff {self.port} {self.path.lstrip('/')} %s"

    def deliver(self, url: str) -> None:
        self.received.append(url)
        self._queue.put(url)

    def next_url(self, timeout: float) -> str:
        """The next URL handed over (in arrival order); AssertionError when none comes within ``timeout``."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no URL was handed to the browser within {timeout:g} s") from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or not args[0].isdigit():
        print("usage: python -m rgw.testing.handoff PORT PATH URL", file=sys.stderr)
        return 2
    port, path, url = args
    inbox = f"http://127.0.0.1:{int(port)}/{path}"
    try:
        response = httpx.post(inbox, content=url.encode(), timeout=POST_TIMEOUT, trust_env=False)
    except httpx.HTTPError as exc:
        print(f"handoff: the browser's inbox did not answer ({type(exc).__name__})", file=sys.stderr)
        return 1
    return 0 if response.status_code == 204 else 1


if __name__ == "__main__":
    sys.exit(main())
