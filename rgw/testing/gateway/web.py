"""HTTP plumbing shared by the routes: replies, body parsing, authentication, step-up, rate limit.

Handlers raise `Reply(response)` to answer early; `endpoint` turns that into the response and adds
`X-Session-Expires-At` [ext] for session callers.  `authenticate`/`authorize` implement the
credential, RBAC and MFA step-up rules of the contract for JSON routes and the text/plain rack proxy.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from . import rbac
from .core import Gateway
from .mfa import MfaError
from .sessions import AuthError, Principal
from .timefmt import rfc3339

Handler = Callable[[Request], Awaitable[Response]]


class Reply(Exception):
    """Answer the request with `response` now."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def json_error(status: int, error: str, message: str | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": error} if message is None else {"error": error, "message": message}
    return JSONResponse(body, status, headers=headers)


def text_error(status: int, text: str, headers: dict[str, str] | None = None) -> PlainTextResponse:
    return PlainTextResponse(text + "\n", status, headers=headers)


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def endpoint(handler: Handler) -> Handler:
    """Wrap a route: early replies, and the session-expiry echo [ext]."""

    async def wrapped(request: Request) -> Response:
        try:
            response = await handler(request)
        except Reply as reply:
            response = reply.response
        except MfaError as exc:
            response = json_error(exc.status, exc.code, exc.message)
        except ClientDisconnect:
            # The client went away mid-request (Ctrl-C, a flaky link): nobody reads an answer.
            return Response(status_code=499)
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is not None and principal.session is not None and gateway_of(request).settings.extensions:
            response.headers["X-Session-Expires-At"] = rfc3339(principal.session.expires_at)
        return response

    return wrapped


async def read_json(request: Request, *, optional: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip() and optional:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Reply(json_error(400, "invalid request")) from None
    if not isinstance(body, dict):
        raise Reply(json_error(400, "invalid request"))
    return body


async def read_form(request: Request) -> dict[str, str]:
    raw = await request.body()
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _auth_reply(error: str, message: str, reason: str, *, text: bool) -> Reply:
    if text:
        return Reply(text_error(401, error, {"X-Error-Reason": reason}))
    return Reply(json_error(401, error, message))


def authenticate(request: Request, *, text: bool = False) -> Principal:
    """The caller, or a 401 reply; remembers the principal for the expiry echo."""
    if text and "session_token" in request.cookies:
        raise _auth_reply("authentication failed: cookie authentication is not accepted here",
                          "Send the session as an Authorization: Bearer header, without cookies.",
                          "cookie authentication is not accepted here", text=True)
    token = bearer(request)
    if token is None:
        raise _auth_reply("authentication failed: missing credentials",
                          "Log in with rack-gateway login, or pass an API token.", "missing credentials",
                          text=text)
    try:
        principal = gateway_of(request).principal(token)
    except AuthError as exc:
        raise _auth_reply(exc.error, exc.message, exc.reason, text=text) from None
    request.state.principal = principal
    return principal


def require_session(principal: Principal) -> None:
    if principal.session is None:
        raise Reply(json_error(403, "mfa requires user session"))


def authorize(request: Request, permission: str, *, text: bool = False) -> Principal:
    """Authenticate, check `permission`, then the MFA enrolment and step-up rules."""
    principal = authenticate(request, text=text)
    if not rbac.allows(principal.permissions, permission):
        denial = rbac.denial(permission)
        raise Reply(text_error(403, denial) if text else json_error(403, denial))
    if principal.session is None:
        return principal
    gw = gateway_of(request)
    enrolled = gw.mfa.enrolled(principal.email)
    if principal.mfa_required and not enrolled:
        message = "Multi-factor authentication is required for your account: enroll before continuing."
        if text:
            raise Reply(text_error(401, "mfa enrollment required",
                                   {"X-MFA-Required": "true", "X-MFA-Level": "enrollment"}))
        raise Reply(json_error(401, "mfa_enrollment_required", message, {"X-MFA-Required": "enrollment"}))
    if permission in rbac.STEP_UP and enrolled and not _recent_step_up(gw, principal):
        _inline_step_up(request, gw, principal, permission, text=text)
    return principal


def _recent_step_up(gw: Gateway, principal: Principal) -> bool:
    at = principal.session.mfa_verified_at if principal.session else None
    return at is not None and gw.settings.clock() - at <= gw.settings.step_up_window


def _inline_step_up(request: Request, gw: Gateway, principal: Principal, permission: str, *, text: bool) -> None:
    assert principal.session is not None
    totp = request.headers.get("x-mfa-totp")
    webauthn = request.headers.get("x-mfa-webauthn")
    problem = f"{permission} requires a recent MFA verification."
    try:
        if totp:
            gw.mfa.verify_code(principal.email, totp)
        elif webauthn:
            payload = _decode_webauthn_header(webauthn)
            gw.mfa.assertion_verify(principal.email, payload.get("session_data"), payload.get("assertion_response"))
        else:
            raise MfaError("mfa_step_up_required")
    except MfaError as exc:
        if exc.status == 429:
            raise Reply(text_error(429, exc.message or exc.code) if text
                        else json_error(429, exc.code, exc.message)) from None
        if exc.code != "mfa_step_up_required":
            problem = "The MFA code was not accepted. " + problem
        if text:
            raise Reply(text_error(401, f"mfa step-up required: {problem}",
                                   {"X-MFA-Required": "true", "X-MFA-Level": "step-up"})) from None
        raise Reply(json_error(401, "mfa_step_up_required", problem, {"X-MFA-Required": "step-up"})) from None
    gw.sessions.record_step_up(principal.session.id)


def _decode_webauthn_header(value: str) -> dict[str, Any]:
    try:
        padded = value.strip() + "=" * (-len(value.strip()) % 4)
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise MfaError("session_incomplete") from None
    if not isinstance(payload, dict):
        raise MfaError("session_incomplete")
    return payload


class RequestCounter:
    """ASGI middleware: counts every request by path and rate-limits `/api/v1/auth/*` per client IP."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def _allow(self, ip: str, per_second: float, burst: int) -> bool:
        now = self.gateway.settings.clock()
        with self._lock:
            tokens, last = self._buckets.get(ip, (float(burst), now))
            tokens = min(float(burst), tokens + max(0.0, now - last) * per_second)
            allowed = tokens >= 1.0
            self._buckets[ip] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            self.gateway.count_request(path)
            limit = self.gateway.settings.rate_limit
            if limit is not None and path.startswith("/api/v1/auth/"):
                client = scope.get("client")
                ip = client[0] if client else "unknown"
                if not self._allow(ip, limit[0], limit[1]):
                    response = json_error(429, "rate limit exceeded", "Too many requests; slow down.",
                                          {"Retry-After": "0"})
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
