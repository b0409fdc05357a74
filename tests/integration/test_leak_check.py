"""The leak check itself (tests/leaks.py): it catches a token in CLI output, and lets through only
what a command prints on purpose."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from rgw.testing import RunningGateway
from tests.integration.conftest import Cli
from tests.leaks import WATCH, command_of

pytestmark = pytest.mark.anyio


async def session_token(cli: Cli, gateway: RunningGateway) -> str:
    assert (await cli("login", "dev", gateway.url)).code == 0
    token = cli.config()["gateways"]["dev"]["token"]
    assert gateway.gateway.issued(token)
    return str(token)


async def test_the_check_finds_issued_tokens_and_allows_only_what_a_command_prints_on_purpose(
    cli: Cli, gateway: RunningGateway
) -> None:
    session = await session_token(cli, gateway)
    api = gateway.gateway.create_api_token("ci", role="viewer")
    try:
        assert [str(leak) for leak in WATCH.record(["apps"], f"Error: oops {session}.\n", where="test")] == [
            f"apps (test) printed a session token {session[:14]}…"
        ]
        assert len(WATCH.record(["--rack", "dev", "api-token", "list"], f'[{{"t": "{api}"}}]', where="test")) == 1
        assert len(WATCH.record(["api-token", "create"], f"{session}\n", where="test")) == 1
        # What the commands print on purpose: an API token from create, anything from `token`.
        assert WATCH.record(["api-token", "create", "--name", "ci"], f"Token: {api}\n", where="test") == []
        assert WATCH.record(["-r", "dev", "token"], f"{session}\n", where="test") == []
        # A token glued to other characters is still found; a word that only looks like one is not.
        assert len(WATCH.record(["racks"], f"x{session}abc", where="test")) == 1
        assert WATCH.record(["racks"], "rgw_token_test rgw_token_not-issued-by-anyone-here", where="test") == []
        assert session not in "\n".join(str(leak) for leak in WATCH.take())  # the report shows a prefix only
    finally:
        WATCH.take()


def test_command_words() -> None:
    assert command_of(["--rack", "a", "api-token", "create", "--name", "x"]) == ("api-token", "create")
    assert command_of(["--config", "/tmp/c", "login", "dev", "http://x"]) == ("login",)
    assert command_of(["token"]) == ("token",)
    assert command_of(["--help"]) == ()


@asynccontextmanager
async def echoing_gateway() -> AsyncIterator[str]:
    """A hostile gateway: answers 400 with the request's Authorization header in its error text."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(5), contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
                auth = next(
                    (
                        line.split(b":", 1)[1].strip()
                        for line in data.split(b"\r\n")
                        if line.lower().startswith(b"authorization:")
                    ),
                    b"",
                )
                body = json.dumps({"error": f"bad credential {auth.decode()}"}).encode()
                await stream.send(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()


async def test_a_credential_a_hostile_gateway_echoes_is_redacted(cli: Cli, gateway: RunningGateway) -> None:
    session = await session_token(cli, gateway)
    try:
        async with echoing_gateway() as url:
            result = await cli("apps", "--api-token", session, env={"RACK_GATEWAY_URL": url})
        assert result.code == 6
        assert session not in result.err
        assert "bad credential Bearer <redacted>" in result.err
        assert [str(leak) for leak in WATCH.take()] == []
    finally:
        WATCH.take()
