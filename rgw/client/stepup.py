"""Step-up MFA as an ``httpx.Auth`` flow: the bearer credential, and the retry a step-up answer asks for.

A protected request (deleting an app, creating an API token) may be answered ``401`` with
``X-MFA-Required: step-up|always`` (JSON routes) or ``X-MFA-Required: true`` + ``X-MFA-Level``
(the rack proxy).  ``StepUpAuth.async_auth_flow`` then asks its ``StepUpProvider`` for inline MFA
headers (``X-Mfa-Totp`` or ``X-MFA-WebAuthn``) and sends the same request again, asking again with
the gateway's message each time it refuses them, at most ``MAX_STEP_UP_TRIES`` codes per request
whatever the provider does (the gateway locks MFA after 5 failures).  The provider (``rgw.login.mfa``)
decides what to ask and when to give up.  A gateway lock-out (a 429 that is not the rate limiter)
ends it with ``MfaFailed``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Protocol

import httpx

from rgw.client.answers import error_text, is_rate_limit, mfa_level
from rgw.client.budget import RequestBudget, limited_route
from rgw.errors import MfaFailed, SessionNotVerified


class StepUpProvider(Protocol):
    """Answers step-up MFA for a request (``rgw.login.mfa.StepUpMfa``)."""

    async def answer(self, level: str, rejection: str | None) -> Mapping[str, str]:
        """The inline MFA headers for one retry; ``rejection`` is the gateway's message after it
        refused the last ones (None the first time).  Raises (``MfaError``) to give up."""
        ...

    async def accepted(self) -> None:
        """The gateway accepted the last answer."""
        ...


#: Whatever the provider does, one request sends at most this many codes (the gateway's MFA
#: lock-out is 5 failures in 5 minutes).
MAX_STEP_UP_TRIES = 4
#: The levels answered with a code; ``enrollment`` cannot be (the user must enrol in the web UI).
STEP_UP_LEVELS = ("step-up", "always")
LOCKOUT_HINT = "The gateway locks MFA for a while after 5 failed attempts; wait 5 minutes, then try again."


def step_up_level(response: httpx.Response) -> str | None:
    """The MFA level a 401 asks for that a code answers (``step-up``, ``always``), else None."""
    level = mfa_level(response) if response.status_code == 401 else None
    return level if level in STEP_UP_LEVELS else None


def code_refused(response: httpx.Response) -> bool:
    """The deployed answer to a wrong inline code: ``401 {"error": "mfa_verification_failed"}``, no header."""
    if response.status_code != 401:
        return False
    error, _message = error_text(response)
    return error in ("mfa_verification_failed", "invalid_code")


class StepUpAuth(httpx.Auth):
    """``Authorization: Bearer <token>``; a step-up answer is met through the provider."""

    requires_response_body = True

    def __init__(
        self,
        token: str | None,
        provider: StepUpProvider | None = None,
        *,
        budget: RequestBudget | None = None,
    ) -> None:
        self.token = token
        self.provider = provider
        self.budget = budget

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        level = step_up_level(response)
        if level is None or self.provider is None:
            return
        rejection: str | None = None
        for _ in range(MAX_STEP_UP_TRIES):
            headers = await self.provider.answer(level, rejection)
            for name, value in headers.items():
                request.headers[name] = value
            if self.budget is not None and limited_route(request.method, request.url.path):
                await self.budget.acquire(priority=True)
            response = yield request
            if response.status_code == 429 and not is_rate_limit(response):
                error, message = error_text(response)
                raise MfaFailed(f"MFA locked: {message or error or 'too many failed MFA attempts'}", hint=LOCKOUT_HINT)
            error, message = error_text(response)
            next_level = step_up_level(response)
            if next_level == "always" and error == "mfa_required":
                # A code went with it and the gateway still asks for MFA, without saying the code
                # was wrong: the deployed gateway wants a session that verified MFA when it logged in.
                raise SessionNotVerified(
                    "this operation needs a session that verified MFA when it logged in; this one did not"
                )
            if next_level is None and not code_refused(response):
                if response.status_code < 400:
                    await self.provider.accepted()
                return  # accepted, or an answer for the caller to judge
            level = next_level or level
            rejection = message or error or "the MFA code was not accepted"
