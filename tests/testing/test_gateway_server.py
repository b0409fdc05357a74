"""Running the reference gateway: `serving_gateway` on the caller's event loop, and the Python API."""

from __future__ import annotations

import socket

import anyio
import httpx
import pytest

from rgw.testing import Gateway, GatewaySettings, create_app, serving_gateway

pytestmark_asyncio = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@pytestmark_asyncio
@pytest.mark.anyio
async def test_serving_gateway_serves_on_this_loop_and_stops_when_left() -> None:
    async with serving_gateway(GatewaySettings()) as gw:
        assert gw.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(gw.url + "/api/v1/health")).json() == {"status": "ok"}
        port = int(gw.url.rsplit(":", 1)[1])
    # Left: the port no longer accepts connections.
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytestmark_asyncio
@pytest.mark.anyio
async def test_cancelling_the_task_group_stops_the_gateway() -> None:
    urls: list[str] = []
    up = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def serve() -> None:
            async with serving_gateway(GatewaySettings()) as gw:
                urls.append(gw.url)
                up.set()
                await anyio.sleep_forever()

        tg.start_soon(serve)
        with anyio.fail_after(15):
            await up.wait()
        tg.cancel_scope.cancel()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", int(urls[0].rsplit(":", 1)[1])), timeout=2),
    ):
        pass


def test_gateway_api_without_server() -> None:
    gateway = Gateway(GatewaySettings(seed=False))
    assert gateway.users() == []
    gateway.add_user("Someone@Example.com", "Someone", roles=("ops",))
    secret = gateway.enroll_totp("someone@example.com")
    assert gateway.totp_secret("someone@example.com") == secret
    assert gateway.users() == [
        {
            "email": "someone@example.com",
            "name": "Someone",
            "roles": ["ops"],
            "mfa_required": False,
            "totp_secret": secret,
        }
    ]
    with pytest.raises(KeyError):
        gateway.enroll_totp("nobody@example.com")
    with pytest.raises(ValueError, match="unknown role"):
        gateway.add_user("x@example.com", roles=("root",))
    app = create_app(gateway=gateway)
    assert app.state.gateway is gateway


def test_seeded_users() -> None:
    users = {u["email"]: u for u in Gateway().users()}
    assert set(users) == {f"{n}@example.com" for n in ("admin", "deployer", "ops", "viewer", "developer", "mfa")}
    assert users["developer@example.com"]["roles"] == ["deployer"]
    assert users["mfa@example.com"]["mfa_required"] is True
    assert users["mfa@example.com"]["totp_secret"]
