"""The JSON side of WebAuthn: what the gateway sends, and what the key's answers become.

The gateway's ``options.publicKey`` is checked and parsed into a ``CeremonyRequest`` (the relying-party
ID must belong to the gateway's origin, as a browser would insist), ``clientDataJSON`` is built here
because rgw acts as the WebAuthn client itself, and the key's answers are wrapped into the
py_webauthn-style ``assertion_response`` / ``registration_response`` documents the gateway verifies.
Nothing here talks to a key or imports fido2; malformed options are an ``MfaError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rgw.errors import MfaError

__all__ = [
    "CeremonyRequest",
    "assertion_json",
    "assertion_request",
    "b64url_decode",
    "b64url_encode",
    "origin_of",
]

# -- base64url ---------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, as WebAuthn JSON uses it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; ``ValueError`` on anything else."""
    if not isinstance(text, str):
        raise ValueError(f"expected a base64url string, got {type(text).__name__}")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64url: {text[:20]!r}") from exc


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a gateway URL: the origin the gateway expects in clientDataJSON."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        raise MfaError(f"Cannot derive a WebAuthn origin from {url!r}", hint="Use the gateway's full URL.")
    netloc = parts.netloc.rpartition("@")[2]  # never put credentials into the origin
    return f"{parts.scheme.lower()}://{netloc.lower()}"


# -- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CeremonyRequest:
    """One ceremony as the key is asked for it: the gateway's options, parsed and checked."""

    rp_id: str
    client_data: bytes
    user_verification: str
    timeout: float
    #: assertion: the allow list; registration: the exclude list
    credentials: list[Mapping[str, Any]] = field(default_factory=list)
    rp: dict[str, Any] = field(default_factory=dict)
    user: dict[str, Any] = field(default_factory=dict)
    key_params: list[dict[str, Any]] = field(default_factory=list)
    resident_key: bool = False
    attestation: str = "none"

    @property
    def client_data_hash(self) -> bytes:
        return hashlib.sha256(self.client_data).digest()


def _bad_options(what: str) -> MfaError:
    return MfaError(
        f"The gateway sent invalid WebAuthn options ({what})",
        hint="Check that the gateway is up to date, or use a TOTP code instead.",
    )


def _unwrap(public_key: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = public_key.get("publicKey")
    return inner if isinstance(inner, Mapping) else public_key


def _bytes_field(value: Any, what: str) -> bytes:
    try:
        return b64url_decode(value)
    except ValueError as exc:
        raise _bad_options(f"{what} is not base64url") from exc


def _descriptors(value: Any, what: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad_options(f"{what} is not a list")
    out: list[Mapping[str, Any]] = []
    for item in value:
        if not isinstance(item, Mapping):
            raise _bad_options(f"{what} holds a non-object")
        if item.get("type", "public-key") != "public-key":
            continue  # unknown credential types are skipped, as browsers do
        out.append({"type": "public-key", "id": _bytes_field(item.get("id"), f"{what} id")})
    return out


def _timeout(options: Mapping[str, Any], timeout: float) -> float:
    hint_ms = options.get("timeout")
    if isinstance(hint_ms, int | float) and not isinstance(hint_ms, bool) and hint_ms > 0:
        return min(timeout, hint_ms / 1000)
    return timeout


def _check_rp_id(rp_id: str, origin: str) -> None:
    """The browser's rule, minus the public-suffix list: the RP ID is the origin's host or a parent domain.

    IP addresses (``127.0.0.1``) and ``localhost`` are allowed, but only as the exact host.
    """
    host = (urlsplit(origin).hostname or "").lower()
    rp = rp_id.lower()
    if rp == host:
        return
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    if not is_ip and "." in rp and host.endswith("." + rp):
        return
    raise MfaError(
        f"The gateway asked for a security-key signature for {rp_id!r}, which does not belong to {origin}",
        hint="Check the gateway URL you logged in with; it must be the URL the gateway is configured for.",
    )


def _client_data(kind: str, challenge: bytes, origin: str) -> bytes:
    document = {"type": kind, "challenge": b64url_encode(challenge), "origin": origin, "crossOrigin": False}
    return json.dumps(document, separators=(",", ":")).encode()


def assertion_request(public_key: Mapping[str, Any], origin: str, timeout: float) -> CeremonyRequest:
    """Parse the gateway's assertion options (``webauthn.get``) for the key at ``origin``."""
    options = _unwrap(public_key)
    origin = origin_of(origin)
    challenge = _bytes_field(options.get("challenge"), "challenge")
    rp_id = options.get("rpId") or urlsplit(origin).hostname
    if not isinstance(rp_id, str) or not rp_id:
        raise _bad_options("rpId")
    _check_rp_id(rp_id, origin)
    return CeremonyRequest(
        rp_id=rp_id,
        client_data=_client_data("webauthn.get", challenge, origin),
        user_verification=str(options.get("userVerification") or "preferred"),
        timeout=_timeout(options, timeout),
        credentials=_descriptors(options.get("allowCredentials"), "allowCredentials"),
    )


# -- responses ---------------------------------------------------------------------------------


def assertion_json(
    req: CeremonyRequest, credential_id: bytes, auth_data: bytes, signature: bytes, user_handle: Any
) -> dict[str, Any]:
    """The ``assertion_response`` document; ``user_handle`` is sent only when the key gave one."""
    body: dict[str, Any] = {
        "clientDataJSON": b64url_encode(req.client_data),
        "authenticatorData": b64url_encode(auth_data),
        "signature": b64url_encode(signature),
    }
    if isinstance(user_handle, bytes) and user_handle:
        body["userHandle"] = b64url_encode(user_handle)
    return _credential_json(credential_id, body)


def _credential_json(credential_id: bytes, response: dict[str, Any]) -> dict[str, Any]:
    encoded = b64url_encode(credential_id)
    return {
        "id": encoded,
        "rawId": encoded,
        "type": "public-key",
        "response": response,
        "clientExtensionResults": {},
        "authenticatorAttachment": "cross-platform",
    }
