"""Bad input never costs data and always gets a clear error: garbage gateways, corrupt config, bad args."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.abc
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def garbage_server(response: bytes) -> AsyncIterator[str]:
    """A TCP server on loopback that answers every request with ``response`` and closes."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(5), contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = await stream.receive()
                    data += chunk
                await stream.send(response)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()


def http(status: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize(
    ("response", "message", "retried"),
    [
        (
            http("200 OK", b"<html><body>Sign in</body></html>", "text/html"),
            "Error: gateway sent an HTML page where JSON was expected (HTTP 200)",
            False,
        ),
        (
            http("200 OK", b'{"apps": [{"na', "application/json"),
            "Error: gateway sent a body that is not valid JSON (HTTP 200)",
            False,
        ),
        (
            http("500 Internal Server Error", b'{"error": "database is down"}', "application/json"),
            "Error: gateway error (HTTP 500): database is down",
            True,
        ),
        (
            http("502 Bad Gateway", b"<html>nginx</html>", "text/html"),
            "Error: gateway error (HTTP 502, an HTML page)",
            True,
        ),
        (b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"trunc', "Error: gateway ", True),
        (b"\x00\x01garbage that is not http\r\n\r\n", "Error: gateway ", True),
    ],
)
async def test_garbage_from_the_gateway_is_a_clear_error(
    cli: Cli, response: bytes, message: str, retried: bool
) -> None:
    async with garbage_server(response) as url:
        env = {"RACK_GATEWAY_API_TOKEN": "rgw_token_test", "RACK_GATEWAY_URL": url}
        result = await cli("apps", "--timeout", "1.5", env=env)
    assert result.code in (5, 6)
    errors = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert errors[0].startswith(message)
    # A transient failure is retried (and said so) until --timeout; a useless answer is final at once.
    assert ("retrying (attempt 1," in result.err) is retried
    assert result.err.startswith("Error:") is not retried
    assert "Traceback" not in result.err
    assert "rgw_token_test" not in result.err


async def test_login_against_garbage_is_a_clear_error_and_writes_nothing(cli: Cli) -> None:
    async with garbage_server(http("200 OK", b"<html>hello</html>", "text/html")) as url:
        result = await cli("login", "dev", url, "--timeout", "10")
    assert result.code == 6
    assert result.err.startswith("Error: gateway sent an HTML page where JSON was expected")
    assert not (cli.config_dir / "config.json").exists()


async def test_corrupt_config_is_reported_and_left_alone(cli: Cli, gateway: RunningGateway) -> None:
    cli.config_dir.mkdir(parents=True, mode=0o700)
    path = cli.config_dir / "config.json"
    path.write_text('{"current": "dev", "gateways": {"dev": {"url": ')
    path.chmod(0o600)
    before = path.read_bytes()
    for args in (["racks"], ["login", "dev", gateway.url, "--timeout", "30"], ["switch", "dev"], ["logout"]):
        result = await cli(*args)
        assert result.code == 10, args
        assert result.err.startswith(f"Error: config file {path} is not valid JSON")
        assert "will not overwrite it" in result.err
    assert path.read_bytes() == before


async def test_unknown_and_missing_racks(cli: Cli, gateway: RunningGateway) -> None:
    none = await cli("apps")  # a fresh machine: not logged in (exit 3), not a config problem
    assert none.code == 3
    assert none.err.splitlines() == [
        "Error: not logged in: no rack is configured yet",
        "Please run: rack-gateway login <rack> <gateway-url>",
    ]
    unknown = await cli("--rack", "ghost", "apps")
    assert unknown.code == 10
    assert unknown.err.splitlines() == [
        "Error: unknown rack 'ghost' (configured: none)",
        "Please run: rack-gateway login ghost <gateway-url>",
    ]
    url_only = await cli("login", gateway.url)
    assert url_only.code == 2
    assert "looks like a URL" in url_only.err


async def test_racks_json(cli: Cli) -> None:
    # A frozen gateway clock: the session the login gets expires exactly session_ttl from now.
    now = float(int(time.time()))
    with running_gateway(GatewaySettings(clock=lambda: now)) as gw:
        assert (await cli("login", "dev", gw.url)).code == 0
        issued = datetime.fromtimestamp(now + gw.settings.session_ttl, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        session_id = cli.config()["gateways"]["dev"]["session_id"]
        row = gw.gateway.store.row("SELECT expires_at FROM sessions WHERE id = ?", (session_id,))
        assert row is not None
        assert row["expires_at"] == now + gw.settings.session_ttl
        result = await cli("racks", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == [
        {
            "name": "dev",
            "url": gw.url,
            "current": True,
            "logged_in": True,
            "email": "developer@example.com",
            "expires_at": issued,
            "rejected": None,
            "unusable": None,
        }
    ]
    assert "token" not in result.out


def test_config_dir_from_environment(tmp_path: Path) -> None:
    from rgw.cli.app import App, Options

    app = App(environ={"GATEWAY_CLI_CONFIG_DIR": str(tmp_path)})
    assert app.config_dir == tmp_path
    flag = App(options=Options(config_dir=tmp_path / "x"), environ={"GATEWAY_CLI_CONFIG_DIR": "/nope"})
    assert flag.config_dir == tmp_path / "x"
