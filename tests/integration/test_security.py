"""Credentials travel only where they belong (issue 12, items 1, 4 and 6), over real loopback sockets.

- plain HTTP to a host that is not this machine is refused before a byte is sent, unless the user
  opted in for that rack (``login --insecure-http``, stored) or for an API-token run
  (``RACK_GATEWAY_INSECURE_HTTP=1``); ``http://0.0.0.0:PORT`` plays such a host: it is not a loopback
  address, yet Linux delivers it to the gateway listening on 127.0.0.1;
- a token that is not printable ASCII without whitespace is never sent, stored or shown;
- the browser is given only an absolute https:// URL (or http:// under the same rule).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rgw.testing import RunningGateway
from rgw.testing.server import running_app
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

INJECTED = "abc\r\nX-Injected: 1"


def unspecified(url: str) -> str:
    """The same gateway as ``http://0.0.0.0:PORT``: not loopback by its address."""
    return url.replace("127.0.0.1", "0.0.0.0")


@pytest.fixture
def silent_port() -> Iterator[socket.socket]:
    """A listening socket nobody should ever connect to (``accept`` tells whether someone did)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    yield sock
    sock.close()


def connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


async def test_an_api_token_is_not_sent_over_plain_http_to_another_host(cli: Cli, silent_port: socket.socket) -> None:
    port = silent_port.getsockname()[1]
    env = {"RACK_GATEWAY_API_TOKEN": "rgw_SECRET_token", "RACK_GATEWAY_URL": f"http://0.0.0.0:{port}"}
    result = await cli("apps", env=env)
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith(
        f"Error: refusing to send credentials in clear text to http://0.0.0.0:{port} "
        "(plain HTTP to a host that is not this machine)\n"
    )
    assert "--insecure-http" not in result.err  # a login would re-point a stored rack: not the token run's fix
    assert "RACK_GATEWAY_INSECURE_HTTP=1 rack-gateway" in result.err
    assert "rgw_SECRET_token" not in result.err
    assert not connected(silent_port)  # not even a connection was made


async def test_an_api_token_run_may_opt_in_to_plain_http(cli: Cli, gateway: RunningGateway) -> None:
    token = gateway.gateway.create_api_token("ci", role="viewer")
    url = unspecified(gateway.url)
    env = {"RACK_GATEWAY_API_TOKEN": token, "RACK_GATEWAY_URL": url, "RACK_GATEWAY_INSECURE_HTTP": "1"}
    result = await cli("test-auth", env=env)
    assert result.code == 0, result.err
    assert result.err == f"Warning: {url} is plain HTTP: anyone on the network path can read your session.\n"
    assert token not in result.out + result.err


async def test_login_refuses_plain_http_to_another_host_and_stores_nothing(
    cli: Cli, silent_port: socket.socket
) -> None:
    url = f"http://0.0.0.0:{silent_port.getsockname()[1]}"
    result = await cli("login", "prod", url)
    assert result.code == 2
    assert f"rack-gateway login prod {url} --insecure-http" in result.err
    assert not (cli.config_dir / "config.json").exists()
    assert cli.browser.visited == []
    assert not connected(silent_port)


async def test_login_insecure_http_is_stored_for_that_rack_only(cli: Cli, gateway: RunningGateway) -> None:
    url = unspecified(gateway.url)
    warning = f"Warning: {url} is plain HTTP: anyone on the network path can read your session.\n"
    result = await cli("login", "prod", url, "--insecure-http", "--no-loopback")
    assert result.code == 0, result.err
    assert result.out == "Logged in as developer@example.com\n"
    assert result.err.startswith(warning)
    entry = cli.config()["gateways"]["prod"]
    assert entry["url"] == url
    assert entry["insecure_http"] is True
    # Later commands use the stored opt-in without being told again, and say so each time.
    again = await cli("test-auth")
    assert again.code == 0, again.err
    assert again.err == warning
    # The opt-in belongs to that rack's URL: an API token pointed at the same URL needs its own.
    other = await cli(
        "test-auth", env={"RACK_GATEWAY_API_TOKEN": "rgw_x", "RACK_GATEWAY_URL": url, "RACK_GATEWAY_RACK": "none"}
    )
    assert other.code == 2
    assert "refusing to send credentials in clear text" in other.err
    # A re-login of the stored rack keeps it.
    relogin = await cli("login", "prod", "--no-loopback")
    assert relogin.code == 0, relogin.err
    assert cli.config()["gateways"]["prod"]["insecure_http"] is True


async def test_loopback_gateways_need_no_opt_in(cli: Cli, gateway: RunningGateway) -> None:
    localhost = gateway.url.replace("127.0.0.1", "localhost")
    result = await cli("login", "dev", localhost, "--no-loopback")
    assert result.code == 0, result.err
    assert result.err.count("plain HTTP") == 0
    assert "insecure_http" not in cli.config()["gateways"]["dev"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:pass@127.0.0.1:1", "Error: the gateway URL has a user name or password in it\n"),
        ("https://admin@gateway.example.com", "Error: the gateway URL has a user name or password in it\n"),
        ("http://[::1", "Error: not a gateway URL: 'http://[::1' (Invalid IPv6 URL)\n"),
    ],
)
async def test_bad_gateway_urls_are_refused_before_anything_is_stored(cli: Cli, url: str, message: str) -> None:
    result = await cli("login", "prod", url)
    assert result.code == 2
    assert result.err.startswith(message)
    assert "pass" not in result.err.replace("password", "")
    assert not (cli.config_dir / "config.json").exists()


def seed(cli: Cli, entry: dict[str, Any]) -> None:
    cli.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = cli.config_dir / "config.json"
    path.write_text(json.dumps({"current": "prod", "gateways": {"prod": entry}}))
    path.chmod(0o600)


async def test_a_stored_bad_url_names_the_rack(cli: Cli) -> None:
    seed(cli, {"url": "http://[::1", "token": "t"})
    result = await cli("apps")
    assert result.code == 10
    assert result.err.startswith("Error: rack 'prod' in the config file has an unusable URL: not a gateway URL")
    assert "Store a new URL with: rack-gateway login prod <gateway-url>" in result.err


async def test_a_stored_token_with_a_line_break_is_never_sent_or_shown(cli: Cli, gateway: RunningGateway) -> None:
    seed(cli, {"url": gateway.url, "token": INJECTED})
    gateway.gateway.reset_counts()
    result = await cli("apps")
    assert result.code == 10
    assert result.err.startswith("Error: the stored session of rack 'prod' is not a valid token (edited by hand?)\n")
    assert "abc" not in result.err
    assert "Injected" not in result.err
    assert gateway.gateway.request_count("/") == 0


@pytest.mark.parametrize("token", [INJECTED, "rgw_tökén", "rgw token", "rgw_\x1b[2J"])
async def test_an_api_token_that_cannot_go_in_a_header_is_refused_unseen(
    cli: Cli, gateway: RunningGateway, token: str
) -> None:
    gateway.gateway.reset_counts()
    result = await cli("--api-token", token, "apps", env={"RACK_GATEWAY_URL": gateway.url})
    assert result.code == 2
    assert result.err.startswith("Error: the API token has spaces, line breaks or non-ASCII characters in it\n")
    assert "the token is not shown here" in result.err
    for part in ("abc", "tökén", "rgw token", "2J"):
        assert part not in result.err
    assert gateway.gateway.request_count("/") == 0


class HostileGateway:
    """A gateway whose login answers are chosen by the test (``start`` and ``complete`` bodies)."""

    def __init__(self, start: dict[str, Any], complete: dict[str, Any] | None = None) -> None:
        self.start, self.complete = start, complete
        self.requests: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/api/v1/auth/cli/start", self.on_start, methods=["POST"]),
                Route("/api/v1/auth/cli/complete", self.on_complete, methods=["POST"]),
            ]
        )

    async def on_start(self, request: Request) -> JSONResponse:
        self.requests.append("start")
        return JSONResponse(self.start)

    async def on_complete(self, request: Request) -> JSONResponse:
        self.requests.append("complete")
        return JSONResponse(
            self.complete or {"error": "authorization_pending"}, status_code=200 if self.complete else 202
        )


START = {"auth_url": "https://idp.example.com/authorize?state=s1", "state": "s1", "code_verifier": "v1"}


async def test_a_gateway_issuing_a_token_with_crlf_gets_a_gateway_error_and_nothing_is_stored(cli: Cli) -> None:
    hostile = HostileGateway(START, {"token": INJECTED, "email": "dev@example.com"})
    with running_app(hostile.app) as url:
        result = await cli("login", "prod", url, "--no-browser", "--no-loopback", "--timeout", "10")
    assert result.code == 6, result.err
    assert "the gateway issued a session token that is not printable ASCII without spaces; nothing was stored" in (
        result.err
    )
    assert "Injected" not in result.out + result.err
    assert not (cli.config_dir / "config.json").exists() or "prod" not in cli.config().get("gateways", {})


@pytest.mark.parametrize(
    "auth_url",
    [
        "--remote-debugging-port=9222",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://evil.example.com/authorize",
        "https://idp.example.com/a b",
        "/relative/authorize",
        "https://user:pw@idp.example.com/",
        "https://idp.example.com/\x1b]0;TITLE\x07",
    ],
)
async def test_the_browser_is_given_only_an_absolute_https_url(cli: Cli, auth_url: str) -> None:
    hostile = HostileGateway({**START, "auth_url": auth_url})
    with running_app(hostile.app) as url:
        result = await cli("login", "prod", url, "--no-loopback", "--timeout", "10")
    assert result.code == 6, result.err
    assert "the gateway's sign-in URL was refused" in result.err
    assert cli.browser.visited == []
    assert hostile.requests == ["start"]  # given up at once: no poll of a login that cannot be signed in
    for part in ("remote-debugging", "/etc/passwd", "alert", "evil.example.com", "TITLE", "user:pw"):
        assert part not in result.out + result.err


async def test_a_loopback_gateway_may_send_the_browser_to_a_loopback_http_page(
    cli: Cli, gateway: RunningGateway
) -> None:
    # The reference gateway's own sign-in page is http://127.0.0.1:PORT/...: the browser gets it.
    result = await cli("login", "dev", gateway.url, "--no-loopback")
    assert result.code == 0, result.err
    assert cli.browser.visited
    assert cli.browser.visited[0].startswith(gateway.url + "/")
