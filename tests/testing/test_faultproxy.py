"""The fault proxy between httpx and a small threaded upstream that counts what reaches it.

Faults are asserted through what the client sees, what upstream saw, and the proxy's counters; the
only clock-based assertion is a loose lower bound on an injected delay.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest

from rgw.testing.faultproxy import FaultPlan, FaultProxy

NETWORK_FAILURES = (httpx.NetworkError, httpx.RemoteProtocolError)  # reset, closed: not a timeout


class Upstream:
    """A keep-alive capable HTTP/1.1 server in a thread; ``seen`` lists (method, path, headers)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Upstream", "yes")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _record(self) -> None:
                with upstream._lock:
                    upstream.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))

            def do_GET(self) -> None:
                self._record()
                parts = urlsplit(self.path)
                if parts.path == "/hold":
                    time.sleep(float(parse_qs(parts.query)["secs"][0]))
                self._answer(200, json.dumps({"path": self.path, "n": len(upstream.seen)}).encode())

            def do_HEAD(self) -> None:
                self._record()
                self._answer(200, b"hello")

            def do_POST(self) -> None:
                self._record()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._answer(201, body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: object, client_address: object) -> None:
                # The proxy hangs up on purpose (504, drops); anything else is a bug in the test.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    upstream.errors.append(repr(sys.exc_info()[1]))

        self.errors: list[str] = []
        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def hits(self) -> int:
        with self._lock:
            return len(self.seen)

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        assert self.errors == []


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


def client_for(proxy: FaultProxy, **kwargs: object) -> httpx.Client:
    options: dict[str, object] = {"base_url": proxy.url, "trust_env": False, "timeout": 10.0}
    options.update(kwargs)
    return httpx.Client(**options)  # type: ignore[arg-type]


def wait_for_blackout_end(proxy: FaultProxy) -> None:
    deadline = time.monotonic() + 30
    while proxy.blackout_active:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_pass_through_keeps_the_client_connection_alive(upstream: Upstream) -> None:
    with FaultProxy(upstream.url) as proxy, client_for(proxy) as client:
        assert proxy.url.startswith("http://127.0.0.1:")
        first = client.get("/a", headers={"X-Custom": "kept", "Keep-Alive": "timeout=5"})
        second = client.get("/b?x=1")
        posted = client.post("/echo", content=b'{"hello": "world"}')
        head = client.head("/c")

    assert first.status_code == second.status_code == head.status_code == 200
    assert first.json() == {"path": "/a", "n": 1}
    assert second.json() == {"path": "/b?x=1", "n": 2}
    assert (posted.status_code, posted.content) == (201, b'{"hello": "world"}')
    assert first.headers["x-upstream"] == "yes"
    assert head.headers["content-length"] == "5"
    assert head.content == b""

    method, path, headers = upstream.seen[0]
    assert (method, path, headers["x-custom"]) == ("GET", "/a", "kept")
    assert "keep-alive" not in headers  # hop-by-hop headers are not forwarded
    assert headers["host"] == proxy.url.removeprefix("http://")
    stats = proxy.stats.snapshot()
    assert (stats.connections, stats.requests, stats.forwarded) == (1, 4, 4)
    assert stats.resets == stats.errors_503 == stats.dropped == 0


def test_connection_close_clients_get_one_connection_per_request(upstream: Upstream) -> None:
    with FaultProxy(upstream.url) as proxy, client_for(proxy, headers={"Connection": "close"}) as client:
        responses = [client.get(f"/{n}") for n in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(r.headers["connection"] == "close" for r in responses)
    assert (proxy.stats.connections, proxy.stats.forwarded) == (3, 3)


def test_reset_rate_one_resets_every_new_connection(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, FaultPlan(reset_rate=1.0)) as proxy, client_for(proxy) as client:
        for _ in range(3):
            with pytest.raises(NETWORK_FAILURES):
                client.get("/never")
    assert proxy.stats.resets == proxy.stats.connections == 3
    assert upstream.hits == 0


def test_error_rate_one_answers_503_without_forwarding(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, FaultPlan(error_rate=1.0)) as proxy, client_for(proxy) as client:
        statuses = [client.get("/x").status_code for _ in range(4)]
    assert statuses == [503] * 4
    assert upstream.hits == 0
    assert (proxy.stats.errors_503, proxy.stats.forwarded, proxy.stats.connections) == (4, 0, 1)


def test_dropped_response_was_handled_upstream_but_never_arrives(upstream: Upstream) -> None:
    plan = FaultPlan(drop_response_rate=1.0)
    with FaultProxy(upstream.url, plan) as proxy, client_for(proxy) as client, pytest.raises(NETWORK_FAILURES):
        client.post("/complete", content=b"{}")
    assert [(method, path) for method, path, _ in upstream.seen] == [("POST", "/complete")]
    assert (proxy.stats.forwarded, proxy.stats.dropped, proxy.stats.resets) == (1, 1, 1)


def test_delay_is_added_to_each_response(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, FaultPlan(delay=0.3)) as proxy, client_for(proxy) as client:
        started = time.monotonic()
        assert [client.get("/slow").status_code for _ in range(2)] == [200, 200]
        elapsed = time.monotonic() - started
    assert proxy.stats.delay_total == pytest.approx(0.6)
    assert elapsed >= 0.6 * 0.9


def test_jitter_stays_within_its_bounds(upstream: Upstream) -> None:
    plan = FaultPlan(delay=0.05, jitter=0.05, seed=3)
    with FaultProxy(upstream.url, plan) as proxy, client_for(proxy) as client:
        for _ in range(10):
            client.get("/j")
    assert 0.0 < proxy.stats.delay_total < 10 * 0.1
    assert proxy.stats.delay_total != pytest.approx(10 * 0.05)  # jitter did move it


def test_blackout_hang_times_clients_out_then_recovers(upstream: Upstream) -> None:
    with FaultProxy(upstream.url) as proxy, client_for(proxy, timeout=0.3) as client:
        assert client.get("/before").status_code == 200  # a keep-alive connection now exists
        proxy.blackout(2.0, mode="hang")
        assert proxy.blackout_active
        with pytest.raises(httpx.ReadTimeout):
            client.get("/during")  # on the existing connection or a new one: no answer either way
        with client_for(proxy, timeout=0.3) as fresh, pytest.raises(httpx.ReadTimeout):
            fresh.get("/during-new-connection")
        wait_for_blackout_end(proxy)
        assert client.get("/after").status_code == 200
    assert proxy.stats.during_blackout >= 2
    assert [path for _, path, _ in upstream.seen] == ["/before", "/after"]


def test_blackout_reset_hits_existing_connections_and_ends_on_demand(upstream: Upstream) -> None:
    with FaultProxy(upstream.url) as proxy, client_for(proxy) as client:
        assert client.get("/before").status_code == 200
        proxy.blackout(60.0, mode="reset")
        with pytest.raises(NETWORK_FAILURES):
            client.get("/during")
        with pytest.raises(NETWORK_FAILURES):
            client.get("/during-new-connection")
        proxy.blackout(0)
        assert not proxy.blackout_active
        assert client.get("/after").status_code == 200
    assert proxy.stats.during_blackout == proxy.stats.resets == 2
    assert [path for _, path, _ in upstream.seen] == ["/before", "/after"]


def test_long_polls_are_held_not_cut(upstream: Upstream) -> None:
    with FaultProxy(upstream.url) as proxy, client_for(proxy) as client:
        response = client.get("/hold?secs=1.5")
    assert response.status_code == 200
    assert proxy.stats.forwarded == 1


def test_upstream_that_never_answers_in_time_gets_504(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, upstream_timeout=0.2) as proxy, client_for(proxy) as client:
        assert client.get("/hold?secs=1").status_code == 504
    assert proxy.stats.errors_504 == 1


def test_upstream_refusing_gets_502() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with FaultProxy(f"http://127.0.0.1:{closed_port}") as proxy, client_for(proxy) as client:
        assert [client.get("/x").status_code for _ in range(2)] == [502, 502]
    assert (proxy.stats.errors_502, proxy.stats.connections) == (2, 1)


def test_plan_can_change_between_requests_on_one_connection(upstream: Upstream) -> None:
    with FaultProxy(upstream.url) as proxy, client_for(proxy) as client:
        assert client.get("/ok").status_code == 200
        proxy.plan = FaultPlan(error_rate=1.0)
        assert client.get("/fail").status_code == 503
        proxy.plan = FaultPlan()
        assert client.get("/ok-again").status_code == 200
    assert proxy.stats.connections == 1


def _outcomes(proxy: FaultProxy, count: int) -> list[int | str]:
    results: list[int | str] = []
    with client_for(proxy) as client:
        for n in range(count):
            try:
                results.append(client.get(f"/r{n}").status_code)
            except NETWORK_FAILURES:
                results.append("failed")
    return results


def test_seeded_plans_replay_exactly(upstream: Upstream) -> None:
    def plan(seed: int) -> FaultPlan:
        return FaultPlan(reset_rate=0.3, error_rate=0.3, drop_response_rate=0.2, seed=seed)

    with FaultProxy(upstream.url, plan(7)) as proxy:
        first = _outcomes(proxy, 30)
        proxy.plan = plan(7)  # a seeded plan restarts the sequence
        again = _outcomes(proxy, 30)
        proxy.plan = plan(8)
        other = _outcomes(proxy, 30)
    with FaultProxy(upstream.url, plan(7)) as fresh:
        replayed = _outcomes(fresh, 30)

    assert {200, 503, "failed"} <= set(first)
    assert first == again == replayed
    assert other != first


@pytest.mark.anyio
async def test_works_from_async_code_on_either_backend(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, FaultPlan(error_rate=0.5, seed=1)) as proxy:
        async with httpx.AsyncClient(base_url=proxy.url, trust_env=False, timeout=10) as client:
            statuses = [(await client.get(f"/{n}")).status_code for n in range(6)]
            await anyio.sleep(0)
    assert set(statuses) == {200, 503}
    assert statuses.count(200) == upstream.hits


def test_plan_validation() -> None:
    with pytest.raises(ValueError, match="reset_rate"):
        FaultPlan(reset_rate=1.5)
    with pytest.raises(ValueError, match="negative"):
        FaultPlan(delay=-1)
    with pytest.raises(ValueError, match="http://"):
        FaultProxy("https://example.com")
    with FaultProxy("http://127.0.0.1:9") as proxy, pytest.raises(ValueError, match="mode"):
        proxy.blackout(1, mode="drop")  # type: ignore[arg-type]
