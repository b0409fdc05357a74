"""The built-in sign-in page's remembered sign-in (``GatewaySettings.remember_sign_in``).

An identity provider with a session, whose consent was given before (Google, most of the time),
answers a sign-in request without a click: it sends the browser straight back to the gateway.  With
``remember_sign_in`` the built-in page does that too: a sign-in posted on it sets a cookie naming
the account, signed with the gateway's ``secret``, and a later ``GET /oauth/authorize`` from the same
browser with that cookie signs in as that account at once (a 302 to the callback, no page).  Browsers
do not keep cookies apart by port, so every gateway on the same host with the same secret (the
default) takes the cookie of any of them: one provider session for every rack, as with Google.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "rgw_signed_in"
#: Seconds the browser keeps the remembered sign-in.
COOKIE_AGE = 3600
_PATH = "/oauth/authorize"


def _mac(secret: str, email: str) -> str:
    return hmac.new(secret.encode(), b"signed-in:" + email.encode(), hashlib.sha256).hexdigest()


def remember(response: Response, secret: str, email: str) -> None:
    """Set the cookie that signs ``email`` in without a click next time (at this path only)."""
    name = base64.urlsafe_b64encode(email.strip().lower().encode()).decode().rstrip("=")
    response.set_cookie(
        COOKIE,
        f"{name}.{_mac(secret, email.strip().lower())}",
        max_age=COOKIE_AGE,
        path=_PATH,
        httponly=True,
        samesite="lax",
    )


def remembered(request: Request, secret: str) -> str | None:
    """The account the browser's cookie names, when it is one this secret signed; else None."""
    name, _, mac = request.cookies.get(COOKIE, "").partition(".")
    try:
        email = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not email or not hmac.compare_digest(mac, _mac(secret, email)):
        return None
    return email
