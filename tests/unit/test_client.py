"""GatewayClient against httpx.MockTransport: translation of every failure into an RgwError."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable

import httpx
import pytest

from rgw.client import GatewayClient, classify_transport_error
from rgw.client.answers import unreachable
from rgw.errors import AuthenticationError, GatewayError, GatewayUnreachable, LoginError, MfaRequired, PermissionDenied
from rgw.models import DeviceInfo, LoginPending, LoginStart, Session
from rgw.urls import normalize_url

pytestmark = pytest.mark.anyio

DEVICE = DeviceInfo("8f4c4b8c-0000-4000-8000-000000000000", "host", "linux/x86_64", "rgw-python/test")
START = LoginStart("https://gw/oauth", "s" * 43, "v" * 128)
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, token: str | None = "rgw_sess_secret") -> GatewayClient:
    return GatewayClient("https://gw.example.com", token=token, transport=httpx.MockTransport(handler))


def test_normalize_url() -> None:
    assert normalize_url("gateway.example.com/") == "https://gateway.example.com"
    assert normalize_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


async def test_headers_bearer_user_agent_and_no_cookies() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[], headers={"Set-Cookie": "session_token=abc; Path=/"})

    async with client(handler) as c:
        await c.apps()
        await c.apps()
    assert seen[1].headers["authorization"] == "Bearer rgw_sess_secret"
    assert seen[1].headers["user-agent"].startswith("rack-gateway/")
    assert "(python)" in seen[1].headers["user-agent"]
    assert "cookie" not in seen[1].headers
    assert seen[1].url.path == "/api/v1/rack-proxy/apps"


async def test_redirect_to_another_origin_is_not_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://evil.example.net/steal"})

    async with client(handler) as c:
        with pytest.raises(GatewayError, match="another origin"):
            await c.info()


async def test_same_origin_redirect_is_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/info":
            return httpx.Response(307, headers={"Location": "/api/v1/info2"})
        return httpx.Response(200, json={"user": {"email": "a@b"}})

    async with client(handler) as c:
        assert (await c.info())["user"] == {"email": "a@b"}


@pytest.mark.parametrize(
    ("response", "error", "text"),
    [
        (httpx.Response(401, json={"error": "authentication failed: session revoked"}), AuthenticationError, None),
        (
            httpx.Response(403, json={"error": "permission denied: convox:app:delete requires admin role"}),
            PermissionDenied,
            "permission denied: convox:app:delete requires admin role",
        ),
        (
            httpx.Response(403, text="You don't have permission to do that\n"),
            PermissionDenied,
            "permission denied: You don't have permission to do that",
        ),
        (
            httpx.Response(500, text="<html><body>oops</body></html>", headers={"content-type": "text/html"}),
            GatewayError,
            "gateway error (HTTP 500, an HTML page)",
        ),
        (
            httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"}),
            GatewayError,
            "gateway sent an HTML page where JSON was expected (HTTP 200)",
        ),
        (
            httpx.Response(200, content=b'{"user": {"ema', headers={"content-type": "application/json"}),
            GatewayError,
            "gateway sent a body that is not valid JSON (HTTP 200)",
        ),
        (httpx.Response(200, json=[1, 2]), GatewayError, "gateway sent an unexpected info response"),
        (
            httpx.Response(502, json={"error": "bad gateway", "message": "rack unreachable"}),
            GatewayError,
            "gateway error (HTTP 502): rack unreachable",
        ),
    ],
)
async def test_error_translation(response: httpx.Response, error: type[Exception], text: str | None) -> None:
    async with client(lambda request: response) as c:
        with pytest.raises(error) as info:
            await c.info()
    if text is not None:
        assert str(info.value) == text
    assert "rgw_sess_secret" not in str(info.value)


async def test_mfa_signals() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="mfa required\n", headers={"X-MFA-Required": "true", "X-MFA-Level": "step-up"})

    async with client(handler) as c:
        with pytest.raises(MfaRequired) as info:
            await c.apps()
    assert info.value.level == "step-up"


async def test_step_up_provider_retries_once_with_inline_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("x-mfa-totp") == "123456":
            return httpx.Response(204)
        return httpx.Response(
            401, json={"error": "mfa_step_up_required", "message": "verify"}, headers={"X-MFA-Required": "step-up"}
        )

    accepted: list[bool] = []

    class Provider:
        async def answer(self, level: str, rejection: str | None) -> dict[str, str]:
            assert (level, rejection) == ("step-up", None)
            return {"X-Mfa-Totp": "123456"}

        async def accepted(self) -> None:
            accepted.append(True)

    c = GatewayClient(
        "https://gw.example.com", token="t", transport=httpx.MockTransport(handler), step_up=lambda _client: Provider()
    )
    async with c:
        await c.delete_api_token("0b5c0f3e-6f7a-4d8e-9a1b-2c3d4e5f6a7b")
    assert len(seen) == 2
    assert seen[1].headers["authorization"] == "Bearer t"
    assert accepted == [True]


async def test_complete_login_answers() -> None:
    answers = iter(
        [
            httpx.Response(202, json={"status": "pending"}),
            httpx.Response(202, json={"status": "pending", "stage": "mfa", "mfa_methods": ["totp", 3]}),
            httpx.Response(200, json={"token": "tok-9f8e7d", "email": "a@b.c", "session_id": 7, "mfa_verified": True}),
            httpx.Response(400, json={"error": "email domain not allowed: a@evil.com"}),
            httpx.Response(400, json={"error": "invalid or expired state"}),
            httpx.Response(429, json={"error": "rate limit exceeded"}, headers={"Retry-After": "0"}),
        ]
    )
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return next(answers)

    async with client(handler, token=None) as c:
        assert await c.complete_login(START, DEVICE, wait=25) == LoginPending()
        assert await c.complete_login(START, DEVICE) == LoginPending(stage="mfa", mfa_methods=("totp",))
        session = await c.complete_login(START, DEVICE)
        assert isinstance(session, Session)
        assert session.session_id == 7
        assert "tok-9f8e7d" not in repr(session)
        with pytest.raises(LoginError, match="email domain not allowed"):
            await c.complete_login(START, DEVICE)
        with pytest.raises(LoginError, match="invalid or expired"):
            await c.complete_login(START, DEVICE)
        with pytest.raises(GatewayError) as info:
            await c.complete_login(START, DEVICE)
    assert info.value.status == 429
    assert info.value.retry_after == 0
    assert bodies[0]["wait"] == 25
    assert bodies[0]["device_id"] == DEVICE.device_id
    assert "wait" not in bodies[1]


async def test_transport_errors_become_unreachable_with_cause() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known")

    async with client(handler) as c:
        with pytest.raises(GatewayUnreachable) as info:
            await c.info()
    assert info.value.cause == "dns"
    assert "VPN or Tailscale" in (info.value.hint or "")


def test_classify_transport_error() -> None:
    refused = httpx.ConnectError("x")
    refused.__cause__ = ConnectionRefusedError()
    assert classify_transport_error(refused) == "refused"
    dns = httpx.ConnectError("x")
    dns.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert classify_transport_error(dns) == "dns"
    assert classify_transport_error(httpx.ReadTimeout("x")) == "timeout"
    assert classify_transport_error(httpx.RemoteProtocolError("Server disconnected")) == "reset"
    assert classify_transport_error(httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")) == "tls"


def test_a_name_that_does_not_exist_and_plain_http_to_https_are_lasting_failures() -> None:
    def failure(cause: BaseException) -> GatewayUnreachable:
        exc = httpx.ConnectError(str(cause))
        exc.__context__ = cause
        return unreachable("https://gw.example", exc)

    nxdomain = failure(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert (nxdomain.cause, nxdomain.lasting) == ("dns", True)
    assert nxdomain.message == "gateway gw.example unreachable: DNS lookup failed (no such name)"
    # A resolver that did not answer (no network yet) may answer later.
    again = failure(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert (again.cause, again.lasting) == ("dns", False)
    for reason, text in [
        ("WRONG_VERSION_NUMBER", "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
        ("RECORD_LAYER_FAILURE", "[SSL: RECORD_LAYER_FAILURE] record layer failure (_ssl.c:1033)"),
    ]:
        error = ssl.SSLError(1, text)
        error.reason = reason
        plain = failure(error)
        assert (plain.cause, plain.lasting) == ("tls", True)
        assert plain.message == "gateway gw.example unreachable: TLS handshake failed (plain HTTP)"
        assert plain.hint == "The server speaks plain HTTP on this port: check the URL's scheme and port."
    certificate = failure(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate has expired"))
    assert (certificate.cause, certificate.lasting) == ("tls", False)
    assert "certificate" in certificate.hint


async def test_real_refused_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with GatewayClient(f"http://127.0.0.1:{port}", token="t") as c:
        with pytest.raises(GatewayUnreachable) as info:
            await c.info()
    assert info.value.cause == "refused"


@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        ({}, {}),
        (
            {"loopback_uri": "http://127.0.0.1:5000/p", "device_name": "dev-mbp"},
            {"loopback_uri": "http://127.0.0.1:5000/p", "device_name": "dev-mbp"},
        ),
        ({"device_name": "h" * 200}, {"device_name": "h" * 150}),
    ],
    ids=["nothing", "loopback-and-device", "device-cut-at-150"],
)
async def test_start_login_sends_the_extensions_it_is_given(kwargs: dict[str, str], body: dict[str, str]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"auth_url": "https://gw/oauth", "state": "s" * 43, "code_verifier": "v"})

    async with client(handler, token=None) as c:
        start = await c.start_login(**kwargs)
    assert start.state == "s" * 43
    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/api/v1/auth/cli/start")
    assert json.loads(request.content) == body


async def test_logout_does_not_follow_the_gateways_redirect() -> None:
    # PROTOCOL.md: logout answers 302; following it would send the (revoked) bearer token to `/`.
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(302, headers={"location": "/"})

    async with client(handler) as gateway:
        await gateway.logout()
        await gateway.revoke("rgw_sess_old")
    assert seen == ["/api/v1/auth/web/logout", "/api/v1/auth/web/logout"]
