"""HTTP plumbing shared by the routes: replies, body parsing, authentication, MFA, rate limit.

Handlers raise `Reply(response)` to answer early; `endpoint` turns that into the response and adds
`X-Session-Expires-At` [ext] for session callers.  `authenticate`/`authorize` implement the
credential, MFA enrolment, RBAC and MFA (always / step-up) rules for JSON routes and the text/plain
rack proxy; inline MFA comes as `X-Mfa-Totp`, `X-MFA-WebAuthn` or a `<token>.<type>.<value>` Bearer.
`enforce_rate_limit` is called by each rate-limited route at the point the Go router applies it
(before anything for the login routes, after authentication for `/auth/mfa/*` and `POST /api-tokens`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from . import ratelimit, rbac
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


def json_error(
    status: int, error: str, message: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": error} if message is None else {"error": error, "message": message}
    return JSONResponse(body, status, headers=headers)


def text_error(status: int, text: str, headers: dict[str, str] | None = None) -> PlainTextResponse:
    return PlainTextResponse(text + "\n", status, headers=headers)


def not_found() -> Response:
    """The deployed gateway's answer to a route it does not have: 404 with an empty body."""
    return Response(status_code=404)


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
    """The Bearer credential as sent (with any inline MFA suffix)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def split_inline_mfa(credential: str) -> tuple[str, str, str]:
    """`(token, mfa_type, mfa_value)` of `<token>.<type>.<value>` (the deployed gateway's inline MFA).

    As there, API tokens (`rgw_…`) are never split; session tokens are, here including the reference
    gateway's `rgw_sess_…` ones.  Without two dots the type and value are empty.
    """
    if credential.startswith("rgw_") and not credential.startswith("rgw_sess_"):
        return credential, "", ""
    parts = credential.split(".", 2)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return credential, "", ""


def inline_mfa(request: Request) -> tuple[str, str]:
    """The MFA sent with this request: `X-Mfa-Totp`, else `X-MFA-WebAuthn`, else the Bearer suffix."""
    totp = request.headers.get("x-mfa-totp", "").strip()
    if totp:
        return "totp", totp
    webauthn = request.headers.get("x-mfa-webauthn", "").strip()
    if webauthn:
        return "webauthn", webauthn
    credential = bearer(request)
    _, kind, value = split_inline_mfa(credential) if credential else ("", "", "")
    return (kind, value) if kind and value else ("", "")


def _auth_reply(error: str, message: str, reason: str, *, text: bool) -> Reply:
    if text:
        return Reply(text_error(401, error, {"X-Error-Reason": reason}))
    return Reply(json_error(401, error, message))


def authenticate(request: Request, *, text: bool = False) -> Principal:
    """The caller, or a 401 reply; remembers the principal for the expiry echo."""
    if text and "session_token" in request.cookies:
        raise _auth_reply(
            "authentication failed: cookie authentication is not accepted here",
            "Send the session as an Authorization: Bearer header, without cookies.",
            "cookie authentication is not accepted here",
            text=True,
        )
    credential = bearer(request)
    if credential is None:
        raise _auth_reply(
            "authentication failed: missing credentials",
            "Log in with rack-gateway login, or pass an API token.",
            "missing credentials",
            text=text,
        )
    token, _, _ = split_inline_mfa(credential)
    try:
        principal = gateway_of(request).principal(token)
    except AuthError as exc:
        raise _auth_reply(exc.error, exc.message, exc.reason, text=text) from None
    request.state.principal = principal
    return principal


def require_session(principal: Principal) -> None:
    if principal.session is None:
        raise Reply(json_error(403, "mfa requires user session"))


# The deployed gateway's answers to a session whose user must enrol in MFA and has not
# (middleware/mfa_enrollment.go): 403 on gateway JSON routes but /info and /auth/mfa/*, and a 403
# JSON (no header) from the rack proxy for CLI sessions.
ENROLL_JSON_MESSAGE = "Multi-factor authentication enrollment is required before you can access this resource."
ENROLL_PROXY_MESSAGE = (
    "You must set up multi-factor authentication before you can continue using the CLI. "
    "Please run rack-gateway login and finish MFA enrollment."
)
ENROLL_ALLOWED_PATHS = ("/api/v1/info",)
ENROLL_ALLOWED_PREFIXES = ("/api/v1/auth/mfa",)


def require_enrollment_done(request: Request, principal: Principal, *, text: bool = False) -> None:
    """Refuse a session whose user must enrol in MFA first, as the deployed gateway does."""
    if principal.session is None or not principal.mfa_required:
        return
    if gateway_of(request).mfa.enrolled(principal.email):
        return
    if text:
        raise Reply(json_error(403, "mfa_enrollment_required", ENROLL_PROXY_MESSAGE))
    path = request.url.path
    if path in ENROLL_ALLOWED_PATHS or path.startswith(ENROLL_ALLOWED_PREFIXES):
        return
    raise Reply(json_error(403, "mfa_enrollment_required", ENROLL_JSON_MESSAGE, {"X-MFA-Required": "enrollment"}))


def authenticate_user(request: Request) -> Principal:
    """`authenticate` for a gateway JSON route, with the MFA enrolment rule."""
    principal = authenticate(request)
    require_enrollment_done(request, principal)
    return principal


def authorize(request: Request, permission: str, *, text: bool = False) -> Principal:
    """Authenticate, then the enrolment rule, the permission, and the MFA the permission needs."""
    principal = authenticate(request, text=text)
    require_enrollment_done(request, principal, text=text)
    if not rbac.allows(principal.permissions, permission):
        denial = rbac.denial(permission)
        raise Reply(text_error(403, denial) if text else json_error(403, denial))
    if principal.session is None:
        return principal  # API tokens never need MFA
    gw = gateway_of(request)
    if permission in rbac.ALWAYS_MFA:
        _require_inline_mfa(request, gw, principal)
    elif text and not gw.settings.extensions:
        _deployed_proxy_mfa(request, gw, principal, permission)
    elif permission in rbac.STEP_UP and gw.mfa.enrolled(principal.email) and not _recent_step_up(gw, principal):
        _inline_step_up(request, gw, principal, permission, text=text)
    return principal


def enforce_rate_limit(request: Request, group: str) -> None:
    """Refuse the request with the deployed gateway's 429 when `group`'s bucket for its client is empty."""
    gw = gateway_of(request)
    limiter = gw.rate_limiter
    if limiter is None:
        return
    peer = request.client.host if request.client else ""
    if not limiter.allow(group, ratelimit.client_ip(request.headers, peer)):
        gw.count_refused(request.url.path, request.method)
        raise Reply(limiter.refusal())


def _recent_step_up(gw: Gateway, principal: Principal) -> bool:
    at = principal.session.mfa_verified_at if principal.session else None
    return at is not None and gw.settings.clock() - at <= gw.settings.step_up_window


def _verify_inline(
    request: Request, gw: Gateway, principal: Principal, kind: str, value: str, *, string_assertion: bool = False
) -> None:
    """Check an inline TOTP/backup code or WebAuthn assertion (MfaError when refused).

    `string_assertion`: like the Go server's JSON routes, take `assertion_response` only as a JSON string.
    """
    if kind == "totp":
        gw.mfa.verify_code(principal.email, value)
    else:
        payload = _decode_webauthn_header(value)
        if string_assertion and not isinstance(payload.get("assertion_response"), str):
            raise MfaError("session_incomplete")
        gw.mfa.assertion_verify(principal.email, payload.get("session_data"), payload.get("assertion_response"))


MFA_ALWAYS_MESSAGE = "Multi-factor authentication is required for this sensitive operation."


def _require_inline_mfa(request: Request, gw: Gateway, principal: Principal) -> None:
    """The deployed gateway's MFAAlways level (middleware/mfa.go `checkInlineMFA`), in both modes.

    A session that never verified MFA, or a request without a code, gets `401 mfa_required` +
    `X-MFA-Required: always`; a refused code `401 mfa_verification_failed`.  A good code lets this one
    request through and opens no step-up window.
    """
    assert principal.session is not None
    kind, value = inline_mfa(request)
    if principal.session.mfa_verified_at is None or not value:
        raise Reply(json_error(401, "mfa_required", MFA_ALWAYS_MESSAGE, {"X-MFA-Required": "always"}))
    if kind not in ("totp", "webauthn"):
        raise Reply(json_error(400, "invalid_mfa_type", "MFA type must be 'totp' or 'webauthn'"))
    try:
        _verify_inline(request, gw, principal, kind, value, string_assertion=not gw.settings.extensions)
    except MfaError:
        raise Reply(json_error(401, "mfa_verification_failed", "Invalid MFA code")) from None


# The MFA levels of the deployed gateway's rack proxy for the fake rack's routes
# (rbac/mfa_requirements.go): enforced whether or not the user is enrolled.
DEPLOYED_PROXY_MFA = {
    "convox:app:create": "step_up",
    "convox:app:delete": "always",
    "convox:env:set": "step_up",
    "convox:release:promote": "step_up",
}


def _deployed_proxy_mfa(request: Request, gw: Gateway, principal: Principal, permission: str) -> None:
    """The deployed rack proxy's MFA check (proxy/mfa_verification.go), text/plain answers."""
    assert principal.session is not None
    level = DEPLOYED_PROXY_MFA.get(permission)
    if level is None:
        return
    kind, value = inline_mfa(request)
    if value:
        try:
            if kind not in ("totp", "webauthn"):
                raise MfaError("invalid_method")
            _verify_inline(request, gw, principal, kind, value)
        except MfaError:
            raise Reply(text_error(401, "MFA verification failed")) from None
        gw.sessions.record_step_up(principal.session.id)
        return
    if _recent_step_up(gw, principal):
        return
    raise Reply(
        text_error(
            401,
            "Multi-factor authentication is required for this action",
            {"X-MFA-Required": "true", "X-MFA-Level": level},
        )
    )


def _inline_step_up(request: Request, gw: Gateway, principal: Principal, permission: str, *, text: bool) -> None:
    assert principal.session is not None
    kind, value = inline_mfa(request)
    problem = f"{permission} requires a recent MFA verification."
    try:
        if not value:
            raise MfaError("mfa_step_up_required")
        _verify_inline(request, gw, principal, kind, value)
    except MfaError as exc:
        if exc.status in (403, 429):
            raise Reply(
                text_error(exc.status, exc.message or exc.code)
                if text
                else json_error(exc.status, exc.code, exc.message)
            ) from None
        if exc.code != "mfa_step_up_required":
            problem = "The MFA code was not accepted. " + problem
        if text:
            raise Reply(
                text_error(
                    401, f"mfa step-up required: {problem}", {"X-MFA-Required": "true", "X-MFA-Level": "step-up"}
                )
            ) from None
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
    """ASGI middleware: counts every request by path (the rate limit is applied by the routes)."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.gateway.count_request(scope["path"])
        await self.app(scope, receive, send)
