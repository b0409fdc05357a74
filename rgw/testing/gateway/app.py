"""`create_app`: the reference gateway's Starlette application and its login routes.

Login routes live here (start, the stand-in Google sign-in page, the callback, the browser MFA page,
`/complete` with long polling, `/auth/cli/mfa`); authenticated API routes live in `api.py`.  With an
OpenID Connect provider configured the sign-in URL is the provider's, the built-in sign-in page is
gone (404), and the callback (or, without extensions, `GET /auth/cli/mfa`, or a `POST /auth/cli/mfa`
that lands before it) exchanges the provider's code before the login moves on.  Any
unexpected error becomes `500 {"error":"internal server error"}`; bad JSON is `400 invalid request`.
The login routes (`/api/v1/auth/cli/*`, `/api/v1/auth/web/*`, and `POST /auth/mfa`, which stands in
for the deployed web UI's `POST /api/v1/auth/cli/mfa`) share one rate-limit group, checked first.  An
unknown route is `404 {"error":"not found"}`, or, without extensions, the Go router's empty 404.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from . import api, pages
from .core import Gateway
from .login import BrowserOutcome, LoginPageError, valid_loopback_uri
from .mfa import MfaError
from .oidc_routes import begin, oidc_auth_url, oidc_exchange_for_cli, oidc_sign_in
from .ratelimit import LOGIN
from .remembered import remember, remembered
from .settings import GatewaySettings
from .web import (
    Reply,
    RequestCounter,
    base_url,
    bearer,
    endpoint,
    enforce_rate_limit,
    gateway_of,
    json_error,
    not_found,
    read_form,
    read_json,
    split_inline_mfa,
)

#: Where a deployed gateway's `POST /auth/cli/mfa` sends its caller on success (its web UI's page).
CLI_MFA_SUCCESS = "/app/cli/auth/success"


def _outcome(outcome: BrowserOutcome) -> Response:
    if outcome.location is not None:
        return RedirectResponse(outcome.location, 302)
    if outcome.page == "error":
        return HTMLResponse(
            pages.error_page(outcome.text, outcome.context, cli_told=outcome.cli_told, note=outcome.note),
            outcome.status,
        )
    return HTMLResponse(pages.done_page(outcome.context), outcome.status)


def _page_error(request: Request, exc: LoginPageError) -> Response:
    return _error_page(request, exc.text, exc.status)


def _error_page(request: Request, text: str, status: int) -> Response:
    return HTMLResponse(pages.error_page(text, rack=gateway_of(request).settings.rack_name), status)


@endpoint
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@endpoint
async def index(request: Request) -> Response:
    return HTMLResponse(pages.index_page(gateway_of(request).settings.rack_name))


@endpoint
async def start(request: Request) -> Response:
    enforce_rate_limit(request, LOGIN)
    gw = gateway_of(request)
    body = await read_json(request, optional=True)
    loopback = body.get("loopback_uri")
    if gw.settings.extensions and loopback is not None and not valid_loopback_uri(loopback):
        return json_error(400, "invalid loopback_uri")
    uri = loopback if isinstance(loopback, str) else None
    device = body.get("device_name")
    device_name = device if isinstance(device, str) else None
    auth_url = None
    if gw.oidc is not None:
        built = await oidc_auth_url(gw, request)
        if isinstance(built, Response):
            return built
        auth_url = built
    return JSONResponse(gw.login.start(base_url(request), uri, device_name=device_name, auth_url=auth_url))


@endpoint
async def authorize_page(request: Request) -> Response:
    gw = gateway_of(request)
    if gw.oidc is not None:
        return not_found()  # users sign in at the identity provider, never here
    state = request.query_params.get("state", "")
    found = gw.login.state(state) if state else None
    if found is None:
        return _error_page(request, "invalid or expired state", 400)
    email = remembered(request, gw.settings.secret) if gw.settings.remember_sign_in else None
    if email is not None:  # signed in before, in this browser: no page, no click
        try:
            return RedirectResponse(gw.login.authorize(state, email, "allow"), 302)
        except LoginPageError as exc:
            return _page_error(request, exc)
    return HTMLResponse(pages.sign_in_page(state, gw.store.users(), gw.login.context(found)))


@endpoint
async def authorize_post(request: Request) -> Response:
    if gateway_of(request).oidc is not None:
        return not_found()
    form = await read_form(request)
    gw = gateway_of(request)
    action = form.get("action", "allow")
    try:
        location = gw.login.authorize(form.get("state", ""), form.get("email", ""), action)
    except LoginPageError as exc:
        return _page_error(request, exc)
    response = RedirectResponse(location, 302)
    if gw.settings.remember_sign_in and action != "cancel":
        remember(response, gw.settings.secret, form.get("email", ""))
    return response


@endpoint
async def begin_sign_in(request: Request) -> Response:
    gw = gateway_of(request)
    if gw.oidc is None or not gw.settings.extensions:
        return not_found()
    try:
        answer = await begin(gw, request, request.query_params.get("state", ""))
    except LoginPageError as exc:
        return _page_error(request, exc)
    return _outcome(answer) if isinstance(answer, BrowserOutcome) else answer


@endpoint
async def callback(request: Request) -> Response:
    enforce_rate_limit(request, LOGIN)
    q = request.query_params
    gw = gateway_of(request)
    if not gw.settings.extensions:
        # The deployed callback keeps the code and sends the browser on to GET /auth/cli/mfa.
        state, code = q.get("state", "").strip(), q.get("code", "").strip()
        if not state or not code:
            return PlainTextResponse("Missing code or state", 400)
        try:
            gw.login.receive_code(state, code, external=gw.oidc is not None)
        except LoginPageError as exc:
            return _page_error(request, exc)
        return RedirectResponse("/api/v1/auth/cli/mfa?" + urlencode({"state": state}), 307)
    try:
        if gw.oidc is not None:
            outcome = await oidc_sign_in(
                gw, request, q.get("state", ""), code=q.get("code", ""), error=q.get("error", "")
            )
        else:
            outcome = gw.login.callback(q.get("state", ""), q.get("code", ""), q.get("error", ""))
    except LoginPageError as exc:
        return _page_error(request, exc)
    return _outcome(outcome)


@endpoint
async def cli_mfa_form(request: Request) -> Response:
    enforce_rate_limit(request, LOGIN)
    state = request.query_params.get("state", "").strip()
    if not state:
        return _error_page(request, "missing state", 400)
    gw = gateway_of(request)
    try:
        if gw.oidc is not None:
            return _outcome(await oidc_sign_in(gw, request, state, received=True))
        return _outcome(gw.login.cli_mfa_form(state))
    except LoginPageError as exc:
        return _page_error(request, exc)


@endpoint
async def mfa_page(request: Request) -> Response:
    state = request.query_params.get("state", "")
    gw = gateway_of(request)
    found = gw.login.state(state) if state else None
    if found is None:
        return _error_page(request, "invalid or expired state", 400)
    if found.stage == "verified":
        return HTMLResponse(pages.done_page(gw.login.context(found)))
    return HTMLResponse(pages.mfa_page(state, gw.login.context(found)))


@endpoint
async def mfa_post(request: Request) -> Response:
    enforce_rate_limit(request, LOGIN)
    form = await read_form(request)
    state = form.get("state", "")
    gw = gateway_of(request)
    try:
        outcome = gw.login.mfa(state, "totp", form.get("code", ""), None, None)
    except MfaError as exc:
        found = gw.login.state(state) if state else None
        if exc.code == "session_expired" or found is None:
            return _error_page(request, "invalid or expired state", 400)
        text = exc.message or {"invalid_code": "That code is not valid.", "code_required": "Enter a code."}.get(
            exc.code, exc.code
        )
        return HTMLResponse(pages.mfa_page(state, gw.login.context(found), text), exc.status)
    # Verified: on to the CLI's loopback page [ext], or this login's own done page (not /auth/done,
    # which cannot say which login it was: the CLI may have redeemed it by the time the browser asks).
    return _outcome(outcome)


@endpoint
async def done(request: Request) -> Response:
    return HTMLResponse(pages.done_page(None, gateway_of(request).settings.rack_name))


@endpoint
async def complete(request: Request) -> Response:
    enforce_rate_limit(request, LOGIN)
    gw = gateway_of(request)
    body = await read_json(request)
    wait = body.get("wait")
    hold = 0.0
    if gw.settings.extensions and isinstance(wait, int | float) and not isinstance(wait, bool):
        hold = max(0.0, min(float(wait), gw.settings.long_poll_max))
    state = body.get("state")
    key = state if isinstance(state, str) else ""
    # The stage the client last saw: a login that has moved on since is answered at once (without
    # it, a poll arriving just after the browser reached the MFA page would be held for nothing).
    seen = body.get("stage")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold
    first: dict[str, object] | None = None
    while True:
        event = gw.watchers.watch(key) if hold > 0 and key else None
        try:
            status, answer = gw.login.complete(body)
            first = answer if first is None else first
            if isinstance(seen, str) and answer.get("stage", seen) != seen:
                return JSONResponse(answer, status)
            remaining = deadline - loop.time()
            # answer at once when anything changed (e.g. the login reached the MFA stage)
            if status != 202 or answer != first or event is None or remaining <= 0 or gw.watchers.closing:
                return JSONResponse(answer, status)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
        finally:
            if event is not None:
                gw.watchers.unwatch(key, event)


@endpoint
async def cli_mfa(request: Request) -> Response:
    enforce_rate_limit(request, LOGIN)
    if not gateway_of(request).settings.extensions:
        return await _deployed_cli_mfa(request)
    body = await read_json(request)
    state = body.get("state")
    gateway_of(request).login.mfa(
        state if isinstance(state, str) else "",
        body.get("method"),
        body.get("code"),
        body.get("session_data"),
        body.get("assertion_response"),
    )
    return JSONResponse({"redirect": base_url(request) + "/auth/done"})


async def _deployed_cli_mfa(request: Request) -> Response:
    """`POST /auth/cli/mfa` as the Go server parses and answers it (`CLILoginMFASubmit`), in its order.

    Every field must be a string (an assertion sent as a JSON object is `invalid_request`), the
    method defaults to totp.  No cookie: the state is the credential.  A code the callback stored and
    the browser's `GET /auth/cli/mfa` has not exchanged yet is exchanged by this request (the browser's
    page then fails with `session_incomplete`).  Any refused verification, the attempt limit and a
    lock included, is `400 invalid_code`.
    """
    try:
        body = await read_json(request)
    except Reply:
        return json_error(400, "invalid_request")
    fields = {k: body.get(k, "") for k in ("state", "method", "code", "session_data", "assertion_response")}
    if not all(isinstance(v, str) for v in fields.values()):
        return json_error(400, "invalid_request")
    method = fields["method"].strip().lower() or "totp"
    state = fields["state"].strip()
    if not state:
        return json_error(400, "state_required")
    if method == "totp" and not fields["code"].strip():
        return json_error(400, "code_required")
    gw = gateway_of(request)
    try:
        step = gw.login.cli_mfa_step(state)
        if step.verified:
            return JSONResponse({"redirect": CLI_MFA_SUCCESS})
        if step.exchange_code is not None:
            if gw.oidc is not None:
                await oidc_exchange_for_cli(gw, request, state, step)
            elif step.email is not None:
                gw.login.cli_identified(state, step.email)
            else:
                gw.login.cli_exchange_failed(state)
                raise MfaError("exchange_failed")
        gw.login.cli_mfa_verify(state, method, fields["code"], fields["session_data"], fields["assertion_response"])
    except MfaError as exc:
        return json_error(400, "invalid_code") if exc.verification_failed else json_error(exc.status, exc.code)
    return JSONResponse({"redirect": CLI_MFA_SUCCESS})


@endpoint
async def cli_webauthn_start(request: Request) -> Response:
    gw = gateway_of(request)
    if not gw.settings.extensions:
        return not_found()
    enforce_rate_limit(request, LOGIN)
    body = await read_json(request)
    state = body.get("state")
    return JSONResponse(gw.login.webauthn_start(state if isinstance(state, str) else "", base_url(request)))


@endpoint
async def logout(request: Request) -> Response:
    gw = gateway_of(request)
    if request.method != "GET" and not gw.settings.extensions:
        return not_found()  # the Go server has GET only
    enforce_rate_limit(request, LOGIN)
    credential = bearer(request)
    token = split_inline_mfa(credential)[0] if credential else request.cookies.get("session_token")
    if token:
        with contextlib.suppress(Exception):
            principal = gw.principal(token)
            if principal.session is not None:
                gw.sessions.revoke(principal.session.id, "logged_out")
    response = RedirectResponse("/", 302)
    response.delete_cookie("session_token")
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        if exc.status_code in (404, 405) and not gateway_of(request).settings.extensions:
            return not_found()  # gin: no route (and no 405s) -> NoRoute's empty 404
        text = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail).lower())
        return json_error(exc.status_code, text)
    if isinstance(exc, Reply):
        return exc.response
    return json_error(500, "internal server error")


ROUTES = [
    Route("/", index),
    Route("/api/v1/health", health),
    Route("/api/v1/auth/cli/start", start, methods=["POST"]),
    Route("/oauth/authorize", authorize_page, methods=["GET"]),
    Route("/oauth/authorize", authorize_post, methods=["POST"]),
    Route("/auth/cli/begin", begin_sign_in, methods=["GET"]),
    Route("/api/v1/auth/cli/callback", callback, methods=["GET"]),
    Route("/auth/mfa", mfa_page, methods=["GET"]),
    Route("/auth/mfa", mfa_post, methods=["POST"]),
    Route("/auth/done", done),
    Route("/api/v1/auth/cli/complete", complete, methods=["POST"]),
    Route("/api/v1/auth/cli/mfa", cli_mfa_form, methods=["GET"]),
    Route("/api/v1/auth/cli/mfa", cli_mfa, methods=["POST"]),
    Route("/api/v1/auth/cli/mfa/webauthn/start", cli_webauthn_start, methods=["POST"]),
    Route("/api/v1/auth/web/logout", logout, methods=["GET", "POST"]),
    *api.ROUTES,
]


def create_app(settings: GatewaySettings | None = None, gateway: Gateway | None = None) -> Starlette:
    """The ASGI app of a reference gateway (a new `Gateway(settings)` unless one is given)."""
    if gateway is None:
        gateway = Gateway(settings)
    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(RequestCounter, gateway=gateway)],
        exception_handlers={HTTPException: _http_error, Exception: _http_error},
    )
    app.state.gateway = gateway
    return app
