"""The login routes' side of OpenID Connect sign-in: the provider's sign-in URL, and its code's exchange.

`oidc_auth_url` is what `/auth/cli/start` uses instead of the built-in page (discovery first: a
provider that cannot be discovered makes `/start` answer 500, as a deployed gateway whose OAuth is
not configured does).  Without extensions that is the provider's URL, as on the Go server; with them
it is the gateway's `/auth/cli/begin?state=`, which remembers the login in a cookie of its own
(`begin`) and sends the browser on to the provider: a provider that answers an error without the
`state` it was given (oidc-provider-mock 0.3 does, on Deny) is matched to its login by that cookie.
`oidc_sign_in` runs where the browser comes back with the provider's code: the callback with
extensions, `GET /auth/cli/mfa` without them.  The provider's answer is awaited
outside the login flow's lock, and the flow checks the state again afterwards.  Authlib is imported
only by a gateway that has a provider (`core._oidc_client`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .login import CANCELLED_TEXT, BrowserOutcome, CliMfaStep, LoginPageError
from .mfa import MfaError
from .web import base_url, json_error

if TYPE_CHECKING:
    from .core import Gateway

CALLBACK_PATH = "/api/v1/auth/cli/callback"
BEGIN_PATH = "/auth/cli/begin"
_COOKIE_PREFIX = "rgw_login_"
#: Seconds the browser keeps a login's cookie (a sign-in at the provider takes less).
COOKIE_AGE = 600
#: How a failed exchange or a refused ID token starts, on the error page and in `/complete`'s answer.
FAILED_PREFIX = "sign-in with the identity provider failed: "
_MAX_PROVIDER_ERROR = 80


def redirect_uri(request: Request) -> str:
    """The gateway's callback as the browser reaches it (the provider compares it with the request's)."""
    return base_url(request) + CALLBACK_PATH


def login_cookie(state: str) -> str:
    """The name of the cookie that remembers the login `state` in the browser (one per login)."""
    return _COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


async def provider_url(gw: Gateway, request: Request) -> Callable[[str, str], str] | Response:
    """A builder of a login's sign-in URL at the provider, or the 500 answer when it is unavailable."""
    from .oidc import ProviderUnavailable

    client = gw.oidc
    assert client is not None
    try:
        metadata = await client.discover()
    except ProviderUnavailable as exc:
        return json_error(500, f"OAuth not available: {exc}")
    callback = redirect_uri(request)
    domains = gw.settings.allowed_domains()
    hint = domains[0] if len(domains) == 1 else None

    def build(state: str, code_verifier: str) -> str:
        return client.authorization_url(
            metadata, state=state, code_verifier=code_verifier, redirect_uri=callback, hosted_domain=hint
        )

    return build


async def oidc_auth_url(gw: Gateway, request: Request) -> Callable[[str, str], str] | Response:
    """The `auth_url` builder of `/start`: the provider's URL, or [ext] the gateway's `begin` page."""
    built = await provider_url(gw, request)
    if isinstance(built, Response) or not gw.settings.extensions:
        return built
    base = base_url(request)
    return lambda state, _verifier: f"{base}{BEGIN_PATH}?{urlencode({'state': state})}"


async def begin(gw: Gateway, request: Request, state: str) -> Response | BrowserOutcome:
    """[ext] `GET /auth/cli/begin?state=`: remember the login in a cookie, then go to the provider."""
    found = gw.login.awaiting_sign_in(state)
    if isinstance(found, BrowserOutcome):
        return found
    built = await provider_url(gw, request)
    if isinstance(built, Response):
        return BrowserOutcome(
            page="error",
            text="The identity provider is not available right now.",
            status=503,
            context=gw.login.context(found),
            cli_told=False,
        )
    response = RedirectResponse(built(state, found.code_verifier), 302)
    response.set_cookie(
        login_cookie(state),
        state,
        max_age=COOKIE_AGE,
        path=CALLBACK_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def remembered_state(gw: Gateway, request: Request) -> str:
    """The one login this browser began here that still waits for its sign-in, else ''."""
    found = []
    for name, value in request.cookies.items():
        if name.startswith(_COOKIE_PREFIX) and name == login_cookie(value):
            st = gw.login.state(value)
            if st is not None and st.stage == "browser":
                found.append(value)
    return found[0] if len(found) == 1 else ""


async def oidc_sign_in(
    gw: Gateway, request: Request, state: str, *, code: str = "", error: str = "", received: bool = False
) -> BrowserOutcome:
    """Exchange the provider's code for this login; `received`: the deployed callback kept it earlier."""
    from .oidc import SignInFailed

    client = gw.oidc
    assert client is not None
    if received:
        taken = gw.login.take_received_code(state)
        if isinstance(taken, BrowserOutcome):
            return taken
        st, code = taken
    else:
        if not state and error:  # a provider that drops `state` from its error answer
            state = remembered_state(gw, request)
        found = gw.login.awaiting_sign_in(state)
        if isinstance(found, BrowserOutcome):
            return found
        st = found
        if error:
            text = CANCELLED_TEXT if error == "access_denied" else f"identity provider error: {error}"
            return gw.login.sign_in_failed(state, text[:_MAX_PROVIDER_ERROR])
        if not code:
            raise LoginPageError(400, "invalid authorization code")
    try:
        identity = await client.identify(
            state=state, code=code, code_verifier=st.code_verifier, redirect_uri=redirect_uri(request)
        )
    except SignInFailed as exc:
        return gw.login.sign_in_failed(state, f"{FAILED_PREFIX}{exc.text}")
    return gw.login.identified(state, identity.email, identity.hosted_domain)


async def oidc_exchange_for_cli(gw: Gateway, request: Request, state: str, step: CliMfaStep) -> None:
    """Deployed `POST /auth/cli/mfa` before the browser's next step: this request exchanges the code
    (`exchange_failed` when the provider refuses it or its identity is refused)."""
    from .oidc import SignInFailed

    client = gw.oidc
    assert client is not None
    assert step.exchange_code is not None
    try:
        identity = await client.identify(
            state=state, code=step.exchange_code, code_verifier=step.code_verifier, redirect_uri=redirect_uri(request)
        )
    except SignInFailed:
        gw.login.cli_exchange_failed(state)
        raise MfaError("exchange_failed") from None
    gw.login.cli_identified(state, identity.email, identity.hosted_domain)
