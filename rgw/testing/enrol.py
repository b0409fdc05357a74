"""Registering a security key with a gateway: what its web UI does in a browser, for tests and demos.

The CLI never registers keys (users enrol in the gateway's web UI); the reference gateway's tests
and the software authenticator do, so the registration half of WebAuthn lives here, next to its
callers, on the same message and CTAP layers as the CLI's assertions (``rgw.login.webauthn``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rgw.errors import MfaError
from rgw.login.webauthn.ctap import (
    RETRY_HINT,
    _ctap_error,
    _Exchange,
    _first_key,
    _probe,
    _require_fido2,
    _uv_options,
    run_exchange,
)
from rgw.login.webauthn.messages import (
    CeremonyRequest,
    _bad_options,
    _bytes_field,
    _check_rp_id,
    _client_data,
    _credential_json,
    _descriptors,
    _timeout,
    _unwrap,
    b64url_encode,
    origin_of,
)

if TYPE_CHECKING:
    from fido2.ctap2.base import Ctap2

__all__ = ["create_credential", "registration_request"]


async def create_credential(
    public_key: Mapping[str, Any],
    origin: str,
    *,
    devices: Sequence[Any] | None = None,
    timeout: float = 60.0,  # noqa: ASYNC109 - the deadline must also cancel the key, see run_exchange
    on_touch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Register a security key with the gateway: the ``registration_response`` JSON.

    Keys that already hold one of ``excludeCredentials`` are skipped; the first other key is used.
    Attestation is passed on only when the gateway asks for it (otherwise ``fmt: "none"``).
    """
    req = registration_request(public_key, origin, timeout)
    return await run_exchange(register_blocking, req, devices, on_touch)


def registration_request(public_key: Mapping[str, Any], origin: str, timeout: float) -> CeremonyRequest:
    """Parse the gateway's registration options (``webauthn.create``) for the key at ``origin``."""
    options = _unwrap(public_key)
    origin = origin_of(origin)
    challenge = _bytes_field(options.get("challenge"), "challenge")
    rp = options.get("rp")
    user = options.get("user")
    if not isinstance(rp, Mapping) or not isinstance(user, Mapping):
        raise _bad_options("rp or user missing")
    rp_id = rp.get("id") or urlsplit(origin).hostname
    if not isinstance(rp_id, str) or not rp_id:
        raise _bad_options("rp.id")
    _check_rp_id(rp_id, origin)
    ctap_user: dict[str, Any] = {"id": _bytes_field(user.get("id"), "user.id")}
    for key in ("name", "displayName"):
        if isinstance(user.get(key), str):
            ctap_user[key] = user[key]
    # WebAuthn's default when the RP names none: ES256, then RS256.
    default_params = [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}]
    params = options.get("pubKeyCredParams") or default_params
    if not isinstance(params, list):
        raise _bad_options("pubKeyCredParams is not a list")
    key_params = [
        {"type": "public-key", "alg": p["alg"]}
        for p in params
        if isinstance(p, Mapping) and p.get("type") == "public-key" and isinstance(p.get("alg"), int)
    ]
    if not key_params:
        raise _bad_options("no public-key algorithm in pubKeyCredParams")
    selection = options.get("authenticatorSelection") or {}
    if not isinstance(selection, Mapping):
        raise _bad_options("authenticatorSelection")
    resident = selection.get("residentKey") == "required" or (
        "residentKey" not in selection and selection.get("requireResidentKey") is True
    )
    return CeremonyRequest(
        rp_id=rp_id,
        client_data=_client_data("webauthn.create", challenge, origin),
        user_verification=str(selection.get("userVerification") or "preferred"),
        timeout=_timeout(options, timeout),
        credentials=_descriptors(options.get("excludeCredentials"), "excludeCredentials"),
        rp={"id": rp_id, "name": str(rp.get("name") or rp_id)},
        user=ctap_user,
        key_params=key_params,
        resident_key=resident,
        attestation=str(options.get("attestation") or "none"),
    )


def registration_json(req: CeremonyRequest, credential_id: bytes, attestation_object: bytes) -> dict[str, Any]:
    """The ``registration_response`` document for a new credential on a USB key."""
    body = {
        "clientDataJSON": b64url_encode(req.client_data),
        "attestationObject": b64url_encode(attestation_object),
        "transports": ["usb"],
    }
    return _credential_json(credential_id, body)


def register_blocking(devices: Sequence[Any], req: CeremonyRequest, exchange: _Exchange) -> dict[str, Any]:
    """Create a credential on the first of ``devices`` not excluded by the gateway (worker thread)."""
    _require_fido2()
    from fido2 import cbor
    from fido2.ctap import CtapError

    def attempt(ctap: Ctap2) -> Any:
        options = dict(_uv_options(ctap.info, req.user_verification) or {})
        if req.resident_key:
            if not ctap.info.options.get("rk"):
                raise MfaError("This security key cannot store a discoverable credential")
            options["rk"] = True
        exclude = None
        if req.credentials:
            probe = _probe(ctap, req.rp_id, req.credentials, exchange)
            if probe.found:
                raise _ctap_error(CtapError(CtapError.ERR.CREDENTIAL_EXCLUDED), exchange)
            if probe.found is None:
                exclude = req.credentials  # the key checks the list itself
        exchange.notify_touch()
        return ctap.make_credential(
            req.client_data_hash,
            req.rp,
            req.user,
            list(req.key_params),
            exclude,
            options=options or None,
            event=exchange.cancel,
        )

    response = _first_key(
        devices,
        exchange,
        attempt,
        MfaError(
            "No connected security key can create a WebAuthn credential",
            hint="Insert a FIDO2 security key and try again.",
        ),
    )
    auth_data = response.auth_data
    if auth_data.credential_data is None:
        raise MfaError("The security key returned no credential", hint=RETRY_HINT)
    fmt, att_stmt = response.fmt, dict(response.att_stmt)
    if req.attestation == "none":
        # As browsers do: drop the attestation statement the gateway did not ask for.
        fmt, att_stmt = "none", {}
    attestation_object = cbor.encode({"fmt": fmt, "authData": bytes(auth_data), "attStmt": att_stmt})
    return registration_json(req, bytes(auth_data.credential_data.credential_id), attestation_object)
