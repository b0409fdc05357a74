"""Gateway URL handling, kept free of heavy imports (used on the CLI's start-up path).

Which links a credential may travel over (``link_kind`` / ``check_link``):

- ``https://`` anywhere;
- ``http://`` to a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``): never leaves the machine;
- ``http://`` over Tailscale (``100.64.0.0/10``, ``fd7a:115c:a1e0::/48``, ``*.ts.net``): WireGuard
  encrypts it underneath; allowed with a one-line notice;
- any other ``http://`` only with an explicit opt-in for that rack (``login --insecure-http``,
  stored in the rack's entry) or, for an API-token run, ``RACK_GATEWAY_INSECURE_HTTP=1``.

A URL with a user name or password in it is refused outright: it would end up in logs and in the
browser's history, and the gateway authenticates with sessions and tokens, never with userinfo.
"""

from __future__ import annotations

import ipaddress
import shlex
from typing import Literal
from urllib.parse import urlsplit

from rgw.errors import InsecureGateway, UsageError

LinkKind = Literal["tls", "loopback", "tailscale", "plain"]

_TAILSCALE_V4 = ipaddress.ip_network("100.64.0.0/10")
_TAILSCALE_V6 = ipaddress.ip_network("fd7a:115c:a1e0::/48")
#: The longest gateway URL accepted (a browser's practical limit for the URLs it is handed).
MAX_URL = 2048


def normalize_url(url: str) -> str:
    """``gateway.example.com/`` -> ``https://gateway.example.com`` (scheme added, one ``/`` stripped)."""
    text = url.strip()
    example = "Example: rack-gateway login production https://gateway.example.com"
    if not text:
        raise UsageError("the gateway URL is empty", hint=example)
    if len(text) > MAX_URL:
        raise UsageError(f"the gateway URL is longer than {MAX_URL} characters", hint=example)
    if not text.isprintable() or any(c.isspace() for c in text):
        raise UsageError(f"not a gateway URL: {text!r} (spaces or control characters)", hint=example)
    if "://" not in text:
        text = "https://" + text
    if text.endswith("/"):
        text = text[:-1]
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise UsageError(f"not a gateway URL: {url!r} ({exc})", hint=example) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"not a gateway URL: {url!r}", hint=example)
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "the gateway URL has a user name or password in it",
            hint="Give the URL without 'user:password@': the gateway signs you in through the browser.",
        )
    if parts.query or parts.fragment:
        raise UsageError(f"not a gateway URL: {url!r} (it has a query or fragment)", hint=example)
    return text


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, the default port filled in and the host lower-cased.

    What a gateway is, for the request budget and the MFA ledger (their files' keys) and for the
    client's same-origin check of redirects.  ``ValueError`` for a port out of range.
    """
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port or ''}"


def link_kind(url: str) -> LinkKind:
    """How a request to ``url`` travels: over TLS, within this machine, over Tailscale, or in the clear."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return "tls"
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    if host.endswith(".ts.net"):
        return "tailscale"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "plain"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address in _TAILSCALE_V4 or address in _TAILSCALE_V6:
        return "tailscale"
    return "plain"


def check_link(url: str, *, insecure_http: bool = False, rack: str | None = None) -> str | None:
    """Refuse to send credentials to ``url`` in the clear; returns a notice to show, or None.

    ``insecure_http`` is the user's explicit opt-in for this rack (or this API-token run).
    """
    kind = link_kind(url)
    if kind == "tailscale":
        return f"Note: {url} is plain HTTP over Tailscale (encrypted underneath by WireGuard)."
    if kind != "plain":
        return None
    if insecure_http:
        return f"Warning: {url} is plain HTTP: anyone on the network path can read your session."
    name = shlex.quote(rack) if rack else "<rack>"
    raise InsecureGateway(
        f"refusing to send credentials in clear text to {url} (plain HTTP to a host that is not this machine)",
        hint=(
            "Use https://.  If this gateway really is plain HTTP on a network you trust, opt in:\n"
            f"  rack-gateway login {name} {url} --insecure-http\n"
            "(stored for that rack), or for one API-token run: RACK_GATEWAY_INSECURE_HTTP=1"
        ),
    )


def browser_url(url: str, *, gateway: str, insecure_http: bool = False) -> str:
    """The gateway's ``auth_url`` if it is fit for a browser's command line, else a ``ValueError``.

    Only an absolute ``https://`` URL (or ``http://`` where the gateway itself may be, under the same
    rule as ``check_link``) with a host: never ``file:``/``javascript:``, never text starting with
    ``-`` that a browser would read as a flag, never whitespace or control characters.
    """
    if not url or url[0] == "-" or len(url) > 8192 or not url.isprintable() or any(c.isspace() for c in url):
        raise ValueError("not a URL a browser should open")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        raise ValueError("not a URL a browser should open") from None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ValueError("not an absolute web URL")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http":
        kind = link_kind(url)
        if kind in ("loopback", "tailscale") or (insecure_http and link_kind(gateway) == "plain"):
            return url
        raise ValueError("a plain-HTTP sign-in URL to another machine")
    raise ValueError(f"a {parts.scheme or 'relative'} URL, not https")


def sign_in_return(auth_url: str) -> str | None:
    """The origin a sign-in at ``auth_url`` sends the browser, and its authorization code, back to.

    That is the origin of the ``redirect_uri`` in its query (a deployed gateway always sends one, to
    ``https://<its DOMAIN>/api/v1/auth/cli/callback``); None when it names none.  ``ValueError`` for
    one that is not an absolute http(s) URL with a host, or for several that disagree: no place to
    compare, so nothing to trust.
    """
    from urllib.parse import parse_qs

    try:
        values = parse_qs(urlsplit(auth_url).query, keep_blank_values=True).get("redirect_uri", [])
        origins = set()
        for value in values:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ValueError("its redirect_uri is not an absolute web URL")
            if parts.username is not None or parts.password is not None:
                raise ValueError("its redirect_uri has a user name or password in it")
            origins.add(origin(value))
    except ValueError as exc:
        raise ValueError(str(exc) if "redirect_uri" in str(exc) else "its redirect_uri is not a URL") from None
    if len(origins) > 1:
        raise ValueError("it names several redirect_uri that disagree")
    return origins.pop() if origins else None


def origin_host(url: str) -> str:
    """``host`` or ``host:port`` of a URL or an origin, the port left out when it is the scheme's default."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return host if port is None or port == default else f"{host}:{port}"


def host_matches(accepted: str, where: str) -> bool:
    """Whether the user's ``accepted`` (a host, ``host:port``, or a URL) names the origin ``where``."""
    text = accepted.strip()  # case and a path make no difference: urlsplit and origin drop both
    if not text:
        return False
    if "://" in text:
        try:
            return origin(text) == where
        except ValueError:
            return False
    try:
        parts = urlsplit("//" + text)
        port = parts.port
    except ValueError:
        return False
    target = urlsplit(where)
    if (parts.hostname or "").rstrip(".") != (target.hostname or "").rstrip("."):
        return False
    return port is None or port == target.port


def looks_like_url(text: str) -> bool:
    return "://" in text or text.startswith(("localhost", "127.")) or ("." in text and "/" in text)
