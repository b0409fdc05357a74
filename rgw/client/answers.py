"""Turning what a gateway sends back (or fails to send) into ``RgwError``s.

The one boundary where httpx's transport errors and HTTP answers become the error tree of
``rgw.errors``: no answer at all -> ``GatewayUnreachable`` with its cause (dns, refused, tls, timeout,
reset); 401 -> ``AuthenticationError`` or ``MfaRequired``; 403 -> ``PermissionDenied`` with the
gateway's text; anything else unusable (a status, HTML, truncated JSON) -> ``GatewayError``; a refused
login -> ``LoginError`` in the seed's words with what to do next.
"""

from __future__ import annotations

import json
import math
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx

from rgw.errors import (
    ENROL_HINT,
    AuthenticationError,
    GatewayError,
    GatewayUnreachable,
    LoginError,
    LoginStateUnknown,
    MfaError,
    MfaFailed,
    MfaRequired,
    PermissionDenied,
)
from rgw.text import MAX_TOKEN, MIN_SECRET, in_run, keep_secrets, printable, run_secrets, without_secrets


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or during, breadth first (trio's groups opened)."""
    seen: set[int] = set()
    found: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        if isinstance(current, BaseExceptionGroup):  # trio reports every address it tried
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return found


def classify_transport_error(exc: BaseException) -> str:
    """The cause of a transport failure: dns, refused, tls, timeout, reset or network."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    for current in _chain(exc):
        if isinstance(current, socket.gaierror):
            return "dns"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return "tls"
        if isinstance(current, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return "reset"
        if isinstance(current, TimeoutError):
            return "timeout"
    text = str(exc).lower()
    if any(
        s in text
        for s in (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo",
            "temporary failure in name resolution",
            "no address associated",
        )
    ):
        return "dns"
    if "refused" in text:
        return "refused"
    if "certificate" in text or "ssl" in text or "tls" in text:
        return "tls"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError) or "reset" in text:
        return "reset"
    return "network"


#: getaddrinfo's "this name does not exist" (NXDOMAIN) and "it has no address": not "try again later".
_NO_SUCH_NAME = frozenset(
    code for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None)) if code is not None
)
#: What OpenSSL says when the server's first bytes are not TLS (an HTTP answer): 3.0 and 3.2+.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE")


def lasting_failure(exc: BaseException) -> str | None:
    """A transport failure that does not heal by itself: ``no_such_name`` (DNS says the name does
    not exist, as opposed to a resolver that did not answer) or ``plain_http`` (an ``https://`` URL
    whose port answered in plain HTTP); None for everything else."""
    for current in _chain(exc):
        if isinstance(current, socket.gaierror):
            return "no_such_name" if current.errno in _NO_SUCH_NAME else None
        if isinstance(current, ssl.SSLCertVerificationError):
            return None
        if isinstance(current, ssl.SSLError):
            text = f"{current.reason or ''} {current}".upper().replace(" ", "_")
            return "plain_http" if any(reason in text for reason in _NOT_TLS) else None
    return None


_LINK = "If the gateway is behind a VPN or Tailscale, check that the link is up."
_HINTS = {
    "dns": "Check the URL, and that your VPN or Tailscale link is up (the name did not resolve).",
    "refused": f"Check the URL and port, and that the gateway is running. {_LINK}",
    "tls": "The gateway's certificate could not be verified; check the URL (https://...) and your clock.",
    "no_such_name": "Check the URL: the name does not exist (or exists only while a VPN is up).",
    "plain_http": "The server speaks plain HTTP on this port: check the URL's scheme and port.",
}


def unreachable(url: str, exc: BaseException) -> GatewayUnreachable:
    cause = classify_transport_error(exc)
    lasting = lasting_failure(exc) if cause in ("dns", "tls") else None
    # No connection was made, so no byte of the request was sent.
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    host = urlsplit(url).netloc or url
    detail = redact(str(exc).strip())
    message = f"gateway {host} unreachable: {GatewayUnreachable.CAUSES[cause]}"
    if lasting == "no_such_name":
        message += " (no such name)"
    elif lasting == "plain_http":
        message += " (plain HTTP)"
    elif detail and cause in ("tls", "network"):
        message += f" ({detail[:200]})"
    hint = _HINTS.get(lasting or cause, f"Check your network connection. {_LINK}")
    return GatewayUnreachable(message, cause=cause, hint=hint, request_sent=sent, lasting=lasting is not None)


def error_text(response: httpx.Response) -> tuple[str, str | None]:
    """(error, message) from a JSON ``{"error","message"}`` body or a text body, made printable.

    The gateway's words go into error messages the terminal shows: a control character or an
    escape sequence in them is escaped here, where they enter rgw, and each is cut to 300 characters.
    A hostile gateway may echo what it was sent: every secret the request carried (``secrets_of``)
    and every secret of the run is taken out first, before any cut could leave part of one.
    """
    error, message = _raw_error_text(response, secrets_of(response))
    return printable(error, limit=300), (printable(message, limit=300) if message is not None else None)


#: Request body fields that carry a secret: the login's state and PKCE verifier, an MFA code, a token.
SECRET_FIELDS = ("state", "code_verifier", "code", "token", "backup_code")


def carried_secrets(request: httpx.Request) -> set[str]:
    """The secrets ``request`` carries: the ``Authorization`` credential (``Bearer <token>``, or the
    step-up ``<token>.totp.<code>``), every ``X-MFA-*`` header, and the body's ``SECRET_FIELDS``."""
    found: set[str] = set()
    for name, value in request.headers.items():
        lowered = name.lower()
        if lowered == "authorization":
            credential = value.split(" ", 1)[1].strip() if " " in value else value.strip()
            found.update((credential, credential.split(".", 1)[0], *credential.split(".totp.", 1)[1:]))
        elif lowered.startswith("x-mfa-"):
            found.add(value.strip())
    try:
        content = request.content
    except httpx.RequestNotRead:  # a streamed body: rgw sends none
        content = b""
    if content[:1] == b"{":
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            body = None
        if isinstance(body, dict):
            found.update(v for k, v in body.items() if k in SECRET_FIELDS and isinstance(v, str))
    return {secret for secret in found if len(secret) >= MIN_SECRET}


def secrets_of(response: httpx.Response) -> set[str]:
    """What no text of this answer may show: what its request carried, and the run's secrets."""
    try:
        request = response.request
    except RuntimeError:  # a response built without a request (tests)
        return run_secrets()
    return carried_secrets(request) | run_secrets()


async def remember_sent(request: httpx.Request) -> None:
    """The clients' request hook: what a request carries becomes a secret of the run, so that a later
    answer (of any route, any gateway) echoing it is scrubbed too."""
    if in_run():
        keep_secrets(carried_secrets(request))


def _raw_error_text(response: httpx.Response, secrets: set[str]) -> tuple[str, str | None]:
    content_type = response.headers.get("content-type", "")
    body = response.content[:4096]
    if "json" in content_type:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            error = data.get("error")
            message = data.get("message")
            return (
                without_secrets(str(error), secrets) if error is not None else "",
                without_secrets(message, secrets) if isinstance(message, str) and message else None,
            )
    if "html" in content_type or body.lstrip()[:1] == b"<":
        return ("", None)
    # Scrubbed before it is cut: a secret the cut went through would show its first part.
    text = without_secrets(response.content[: 4096 + MAX_TOKEN].decode("utf-8", "replace"), secrets).strip()
    return (text.splitlines()[0][:300] if text else "", None)


def is_rate_limit(response: httpx.Response) -> bool:
    """A 429 from the gateway's per-IP limiter (not the MFA lock-out, which is a 429 too)."""
    if response.status_code != 429:
        return False
    if "x-ratelimit-limit" in response.headers:
        return True
    error, message = error_text(response)
    return "rate limit" in f"{error} {message or ''}".lower()


def retry_after_of(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds; None when absent or not a finite number (``nan``, ``inf``, a date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _describe_status(response: httpx.Response) -> str:
    error, message = error_text(response)
    text = message or error
    if text:
        return f"gateway error (HTTP {response.status_code}): {text}"
    kind = "an HTML page" if "html" in response.headers.get("content-type", "") else "no usable message"
    return f"gateway error (HTTP {response.status_code}, {kind})"


def check_response(response: httpx.Response) -> httpx.Response:
    """Raise the right ``RgwError`` for an error status; return successful responses."""
    status = response.status_code
    if status < 400:
        return response
    error, message = error_text(response)
    if status == 401:
        if level := mfa_level(response):
            raise MfaRequired(message or error or "MFA required", level=level)
        if error == "mfa_verification_failed":  # a wrong inline code is not a bad session
            raise MfaFailed(
                f"MFA verification failed: {(message or 'invalid MFA code').rstrip('.')}",
                hint="Run it again with a fresh code.",
            )
        reason = printable(response.headers.get("x-error-reason") or error or "authentication failed", limit=200)
        raise AuthenticationError("session expired or invalid", reason=reason, detail=message)
    if status == 403:
        if enrolment_required(response, error, message):
            raise MfaError(
                f"MFA enrolment required: {message or 'your account must enrol in MFA first'}",
                hint=ENROL_HINT,
            )
        text = error or "permission denied"
        if message and message not in text:
            text = f"{text}: {message}" if text == "insufficient permissions" else text
        if not text.lower().startswith("permission denied"):
            text = f"permission denied: {text}"
        raise PermissionDenied(text)
    raise GatewayError(_describe_status(response), status=status, retry_after=retry_after_of(response))


def mfa_level(response: httpx.Response) -> str | None:
    """The MFA level an answer asks for (``step-up``, ``always``, ``enrollment``), None when none.

    JSON routes say ``X-MFA-Required: step-up|always|enrollment``; the rack proxy says
    ``X-MFA-Required: true`` with ``X-MFA-Level: step_up|always`` (the deployed proxy writes
    ``step_up``).
    """
    level = (response.headers.get("x-mfa-required") or "").lower()
    if level == "true":
        level = (response.headers.get("x-mfa-level") or "step-up").lower()
    return level.replace("_", "-") or None


def enrolment_required(response: httpx.Response, error: str, message: str | None) -> bool:
    """A 403 that asks the user to enrol in MFA first (JSON routes say so by header and error code;
    the deployed rack proxy only in its message)."""
    if mfa_level(response) == "enrollment" or error == "mfa_enrollment_required":
        return True
    text = f"{error} {message or ''}".lower()
    return "multi-factor authentication" in text and ("set up" in text or "enrol" in text)


def parse_json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        what = (
            "an HTML page where JSON was expected"
            if response.content.lstrip()[:1] == b"<"
            else ("a body that is not valid JSON")
        )
        raise GatewayError(
            f"gateway sent {what} (HTTP {response.status_code})",
            status=response.status_code,
            hint="Check the URL points at a rack gateway, not a web page or another service.",
        ) from None


_LOGIN_HINTS = (
    (
        "email domain not allowed",
        "Your Google Workspace domain isn't configured in the gateway. Contact your administrator to add "
        "your domain to GOOGLE_ALLOWED_DOMAIN.",
    ),
    ("user not authorized", "Your account is not a user of this gateway; ask an administrator to add you."),
    ("multi-factor", "Set up MFA in the gateway's web UI, then run the login again."),
    ("consent", "Run the login again and allow access on the consent page."),
    (
        "identity provider",
        "The sign-in at the gateway's identity provider did not give it a usable identity. Run the login "
        "again; if it fails the same way, ask your administrator to check the gateway's sign-in settings.",
    ),
    ("invalid or expired state", "The gateway no longer knows this login: run the login again."),
)


def login_refused(text: str) -> LoginError:
    """The gateway refused the login: its text, in the seed's form, with what to do next.

    ``email domain not allowed: a@b.c`` becomes ``Error: email domain not allowed`` with the address
    and the seed's advice in the hint.
    """
    text = text.strip() or "login refused by the gateway"
    lowered = text.lower()
    if "invalid or expired state" in lowered:
        return LoginStateUnknown(text)
    for key, advice in _LOGIN_HINTS:
        if key in lowered:
            head, _, detail = text.partition(":")
            if key == "email domain not allowed" and detail.strip():
                return LoginError(head.strip(), hint=f"Signed in as {detail.strip()}. {advice}")
            return LoginError(text, hint=advice)
    return LoginError(text)


def redact(text: str) -> str:
    """An exception's text with anything that may be a credential taken out (header values, bearer
    tokens, the run's secrets)."""
    import re

    if "header" in text.lower():
        return "an HTTP header could not be sent"
    text = without_secrets(text, run_secrets())
    return re.sub(r"(?i)(bearer|token|authorization)([\s:=]+)\S+", r"\1\2<redacted>", text)
