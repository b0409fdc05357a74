"""Running the reference gateway: `serve_forever` with a stop event, and the Python API."""

from __future__ import annotations

import queue
import threading
from typing import Any

import httpx
import pytest

from rgw.testing import Gateway, GatewaySettings, create_app, serve_forever


@pytest.mark.parametrize("two_args", [False, True])
def test_serve_forever_ready_and_stop(two_args: bool) -> None:
    urls: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    def ready_one(url: str) -> None:
        urls.put((url, None))

    def ready_two(url: str, gateway: Any) -> None:
        urls.put((url, gateway))

    ready = ready_two if two_args else ready_one
    thread = threading.Thread(
        target=serve_forever, args=(GatewaySettings(), "127.0.0.1", 0, ready), kwargs={"stop": stop}, daemon=True
    )
    thread.start()
    url, gateway = urls.get(timeout=15)
    assert url.startswith("http://127.0.0.1:")
    assert (gateway is not None) == two_args
    assert httpx.get(url + "/api/v1/health").json() == {"status": "ok"}
    stop.set()
    thread.join(15)
    assert not thread.is_alive()


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
