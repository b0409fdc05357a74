"""oidc-provider-mock with a session: it signs a browser that signed in before in again without a click.

An identity provider with a session, whose consent was given before (Google, most of the time),
answers an authorization request at once: a 302 back to the client with a code, no page.
oidc-provider-mock (0.3, 0.4) always shows its form, so this runs its WSGI application behind a
small layer that does what such a provider does: an ``Authorize`` posted on the form (not Deny) sets
a session cookie; a later ``GET /oauth2/authorize`` with that cookie is answered as if the same
account had been posted again: a redirect with a fresh code, checked by the provider as usual
(client, redirect URI, nonce, PKCE).  Browsers keep cookies by host, not port, so one provider on
127.0.0.1 is one session for every gateway that uses it.

Run as ``python tests/remembering_provider.py --port 0``: uvicorn reports its address on stderr as
``python -m oidc_provider_mock`` does (``tests.oidc_provider.running_provider(remember=True)``).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode

COOKIE = "idp_session"
_AUTHORIZE = "/oauth2/authorize"

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RememberingProvider:
    """WSGI: remembers who signed in (a cookie naming a random session) and signs them in again."""

    def __init__(self, app: Wsgi) -> None:
        self.app = app
        self.sessions: dict[str, str] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != _AUTHORIZE:
            return self.app(environ, start_response)
        if environ["REQUEST_METHOD"] == "GET":
            sub = self.sessions.get(_cookie(environ))
            if sub is not None:  # signed in before: the account's Authorize, without the page
                environ = _as_post(environ, {"sub": sub})
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_qs(body.decode("utf-8", "replace"))
        sub = (form.get("sub") or [""])[0]
        signed_in = bool(sub) and (form.get("action") or [""])[0] != "deny"

        def remember(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if signed_in and status.startswith("302"):
                token = secrets.token_urlsafe(16)
                self.sessions[token] = sub
                headers = [*headers, ("Set-Cookie", f"{COOKIE}={token}; Path={_AUTHORIZE}; HttpOnly; SameSite=Lax")]
            return start_response(status, headers, exc_info)

        return self.app(environ, remember)


def _cookie(environ: dict[str, Any]) -> str:
    for part in str(environ.get("HTTP_COOKIE", "")).split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


def _as_post(environ: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    body = urlencode(form).encode()
    return {
        **environ,
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }


def main() -> None:
    import oidc_provider_mock
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--require-nonce", action="store_true")
    args = parser.parse_args()
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain HTTP on loopback, as the module's CLI allows
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    app = oidc_provider_mock.app(require_nonce=args.require_nonce)
    uvicorn.run(RememberingProvider(app), interface="wsgi", host="127.0.0.1", port=args.port, log_config=None)


if __name__ == "__main__":
    main()
