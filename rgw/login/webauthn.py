"""WebAuthn with a USB security key: the CLI acts as the WebAuthn client itself.

The gateway's relying-party ID is the hostname of its URL (often ``127.0.0.1`` or ``localhost`` in
development), which fido2's high-level ``Fido2Client`` refuses, and the origin it expects is its base
URL exactly as we know it.  So this module builds ``clientDataJSON`` itself and speaks CTAP2 to the
key through ``fido2.ctap2.Ctap2``; the answers are the py_webauthn-style JSON documents
(``assertion_response``, ``registration_response``) the gateway verifies.  The blocking CTAP exchange
runs in a worker thread; a deadline or a cancellation sets a ``threading.Event`` that fido2 turns into
a CTAPHID cancel.  fido2 is imported only inside functions: CLI start-up must not pay for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.from_thread
import anyio.to_thread

from rgw.errors import MfaError

if TYPE_CHECKING:
    from fido2.ctap import CtapError
    from fido2.ctap2.base import Ctap2, Info

__all__ = [
    "b64url_decode",
    "b64url_encode",
    "create_credential",
    "find_devices",
    "get_assertion",
    "origin_of",
]

_T = TypeVar("_T")

INSTALL_HINT = "pip install 'rgw[webauthn]'"
RETRY_HINT = "Run the command again and touch your security key when it blinks."
OTHER_METHOD_HINT = "Use a TOTP or backup code instead, or register a key without a PIN requirement."

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


# -- devices -----------------------------------------------------------------------------------


def _require_fido2() -> None:
    try:
        import fido2.ctap2.base
        import fido2.hid  # noqa: F401 - raises on a platform without a HID backend
    except ImportError as exc:
        raise MfaError("WebAuthn needs the fido2 package", hint=INSTALL_HINT) from exc
    except Exception as exc:
        raise MfaError(
            f"USB security keys are not supported on this platform ({exc})",
            hint="Use a TOTP or backup code instead.",
        ) from exc


def find_devices() -> list[Any]:
    """The USB HID security keys that can be opened now (possibly none).

    Like ``fido2.hid.CtapHidDevice.list_devices()``, but a key that cannot be opened (held by
    another program, or not answering CTAPHID_INIT) is skipped instead of hiding the others.
    """
    _require_fido2()
    from fido2.hid import CtapHidDevice, list_descriptors, open_connection

    try:
        descriptors = list(list_descriptors())  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise MfaError(
            f"Cannot list USB security keys: {exc}",
            hint="Check that your user may access HID devices (on Linux: udev rules for /dev/hidraw*).",
        ) from exc
    devices: list[Any] = []
    for descriptor in descriptors:
        # One key held by another program must not hide the others.
        try:
            connection = open_connection(descriptor)  # type: ignore[no-untyped-call]
            devices.append(CtapHidDevice(descriptor, connection))
        except Exception:  # noqa: S112 - OSError, ConnectionFailure, CtapError: skip that key
            continue
    return devices


# -- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
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


def _assertion_request(public_key: Mapping[str, Any], origin: str, timeout: float) -> _Request:
    options = _unwrap(public_key)
    origin = origin_of(origin)
    challenge = _bytes_field(options.get("challenge"), "challenge")
    rp_id = options.get("rpId") or urlsplit(origin).hostname
    if not isinstance(rp_id, str) or not rp_id:
        raise _bad_options("rpId")
    _check_rp_id(rp_id, origin)
    return _Request(
        rp_id=rp_id,
        client_data=_client_data("webauthn.get", challenge, origin),
        user_verification=str(options.get("userVerification") or "preferred"),
        timeout=_timeout(options, timeout),
        credentials=_descriptors(options.get("allowCredentials"), "allowCredentials"),
    )


def _registration_request(public_key: Mapping[str, Any], origin: str, timeout: float) -> _Request:
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
    return _Request(
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


# -- the blocking CTAP exchange (worker thread) ------------------------------------------------


class _Exchange:
    """State shared between the worker thread and the event loop for one ceremony."""

    def __init__(self, on_touch: Callable[[], None] | None) -> None:
        self.cancel = threading.Event()
        self._on_touch = on_touch
        self.touched = False

    def notify_touch(self) -> None:
        """Tell the user to touch the key: once, on the event loop's thread, never after a cancel."""
        if self.touched or self.cancel.is_set():
            return
        self.touched = True
        if self._on_touch is not None:
            anyio.from_thread.run_sync(self._on_touch)


def _uv_options(info: Info, requirement: str) -> dict[str, bool] | None:
    """CTAP options for the gateway's userVerification: built-in UV when usable, never a PIN."""
    builtin_uv = bool(info.options.get("uv")) and not info.options.get("pinUvAuthToken")
    if requirement == "required":
        if builtin_uv:
            return {"uv": True}
        raise _pin_error()
    if requirement == "preferred" and builtin_uv:
        return {"uv": True}
    return None


def _pin_error() -> MfaError:
    return MfaError(
        "The gateway requires your security key's PIN or fingerprint, which rgw cannot ask for yet",
        hint=OTHER_METHOD_HINT,
    )


def _ctap_error(exc: CtapError, exchange: _Exchange) -> MfaError:
    from fido2.ctap import CtapError

    err = CtapError.ERR
    code = exc.code
    if code == err.KEEPALIVE_CANCEL or exchange.cancel.is_set():
        return MfaError("The security-key request was cancelled", hint=RETRY_HINT)
    if code in (err.USER_ACTION_TIMEOUT, err.ACTION_TIMEOUT, err.TIMEOUT):
        return MfaError("The security key was not touched in time", hint=RETRY_HINT)
    if code in (err.OPERATION_DENIED, err.NOT_ALLOWED):
        return MfaError("The security key refused the request", hint=RETRY_HINT)
    if code in (
        err.PUAT_REQUIRED,
        err.PIN_INVALID,
        err.PIN_AUTH_INVALID,
        err.PIN_BLOCKED,
        err.PIN_AUTH_BLOCKED,
        err.PIN_NOT_SET,
        err.UV_BLOCKED,
        err.UV_INVALID,
    ):
        return MfaError(
            f"The security key wants its PIN or fingerprint ({code.name}), which rgw cannot ask for yet",
            hint=OTHER_METHOD_HINT,
        )
    if code in (err.UNSUPPORTED_OPTION, err.INVALID_OPTION):
        return MfaError(
            f"The security key does not support what the gateway asked for ({code.name})",
            hint=OTHER_METHOD_HINT,
        )
    if code == err.CREDENTIAL_EXCLUDED:
        return MfaError(
            "This security key is already registered with the gateway",
            hint="Use a different security key, or remove the old registration in the gateway first.",
        )
    if code == err.UNSUPPORTED_ALGORITHM:
        return MfaError(
            "The security key supports none of the signature algorithms the gateway accepts",
            hint="Use a FIDO2 security key that supports ES256.",
        )
    if code == err.KEY_STORE_FULL:
        return MfaError("The security key has no room for another credential", hint=OTHER_METHOD_HINT)
    return MfaError(f"The security key failed: {exc}", hint=RETRY_HINT)


def _device_lost(exc: BaseException) -> MfaError:
    return MfaError(f"Lost contact with the security key: {exc}", hint="Re-insert the key and try again.")


def _open(device: Any) -> Ctap2 | None:
    """A CTAP2 session on ``device``, or None for a U2F-only key or one that does not answer."""
    from fido2.ctap2.base import Ctap2

    try:
        return Ctap2(device)
    except Exception:  # ValueError (no CBOR), CtapError, OSError, ConnectionFailure: not usable
        return None


def _unusable(count: int) -> MfaError:
    return MfaError(
        f"None of the connected security keys ({count}) speaks FIDO2 (CTAP2)",
        hint="rgw needs a FIDO2 security key; U2F-only keys are not supported. Use a TOTP code instead.",
    )


@dataclass(frozen=True)
class _Probe:
    """What a silent (no-touch) probe learned about which credentials a key holds.

    ``found``: True (``allow`` is what to send), False (none of them), None (the key cannot say).
    """

    found: bool | None
    allow: list[Mapping[str, Any]] | None = None


def _probe(ctap: Ctap2, rp_id: str, credentials: list[Mapping[str, Any]], exchange: _Exchange) -> _Probe:
    """Which of ``credentials`` (empty: a discoverable one) this key holds, asked with ``up: false``."""
    from fido2.ctap import CtapError

    info = ctap.info
    candidates = credentials
    if info.max_cred_id_length:
        candidates = [c for c in candidates if len(c["id"]) <= info.max_cred_id_length]
        if credentials and not candidates:
            return _Probe(found=False)
    chunk_size = max(info.max_creds_in_list, 1)
    probe_hash = b"\0" * 32
    try:
        if not credentials:
            ctap.get_assertion(rp_id, probe_hash, None, options={"up": False}, event=exchange.cancel)
            return _Probe(found=True)
        for start in range(0, len(candidates), chunk_size):
            chunk = candidates[start : start + chunk_size]
            try:
                response = ctap.get_assertion(rp_id, probe_hash, chunk, options={"up": False}, event=exchange.cancel)
            except CtapError as exc:
                if exc.code == CtapError.ERR.NO_CREDENTIALS:
                    continue
                raise
            if len(chunk) == 1 or not response.credential:
                return _Probe(found=True, allow=[chunk[0]])
            return _Probe(found=True, allow=[{"type": "public-key", "id": bytes(response.credential["id"])}])
        return _Probe(found=False)
    except CtapError as exc:
        if exc.code == CtapError.ERR.NO_CREDENTIALS:
            return _Probe(found=False)
        if exc.code == CtapError.ERR.KEEPALIVE_CANCEL or exchange.cancel.is_set():
            raise _ctap_error(exc, exchange) from exc
        # An older key that cannot probe silently decides after the touch.
        return _Probe(found=None, allow=candidates[:chunk_size] or None)


def _assert_blocking(devices: Sequence[Any], req: _Request, exchange: _Exchange) -> dict[str, Any]:
    _require_fido2()
    from fido2.ctap import CtapError
    from fido2.hid import ConnectionFailure

    problems: list[MfaError] = []
    unusable = 0
    for device in devices:
        if exchange.cancel.is_set():
            break
        ctap = _open(device)
        if ctap is None:
            unusable += 1
            continue
        try:
            options = _uv_options(ctap.info, req.user_verification)
            probe = _probe(ctap, req.rp_id, req.credentials, exchange)
            if probe.found is False:
                continue
            exchange.notify_touch()
            response = ctap.get_assertion(
                req.rp_id, req.client_data_hash, probe.allow, options=options, event=exchange.cancel
            )
        except MfaError as exc:
            problems.append(exc)
            continue
        except CtapError as exc:
            if exc.code == CtapError.ERR.NO_CREDENTIALS:
                continue
            raise _ctap_error(exc, exchange) from exc
        except (OSError, ConnectionFailure) as exc:
            problems.append(_device_lost(exc))
            continue
        if response.credential:
            credential_id = bytes(response.credential["id"])
        elif probe.allow:
            credential_id = probe.allow[0]["id"]
        else:
            raise MfaError("The security key did not say which credential it used", hint=RETRY_HINT)
        body: dict[str, Any] = {
            "clientDataJSON": b64url_encode(req.client_data),
            "authenticatorData": b64url_encode(bytes(response.auth_data)),
            "signature": b64url_encode(bytes(response.signature)),
        }
        user_handle = response.user.get("id") if response.user else None
        if isinstance(user_handle, bytes) and user_handle:
            body["userHandle"] = b64url_encode(user_handle)
        return _credential_json(credential_id, body)
    if problems:
        raise problems[0]
    if unusable == len(devices):
        raise _unusable(unusable)
    raise MfaError(
        f"No connected security key is registered for {req.rp_id}",
        hint="Insert the security key you registered with this gateway, or use a TOTP or backup code.",
    )


def _register_blocking(devices: Sequence[Any], req: _Request, exchange: _Exchange) -> dict[str, Any]:
    _require_fido2()
    from fido2 import cbor
    from fido2.ctap import CtapError
    from fido2.hid import ConnectionFailure

    problems: list[MfaError] = []
    unusable = 0
    for device in devices:
        if exchange.cancel.is_set():
            break
        ctap = _open(device)
        if ctap is None:
            unusable += 1
            continue
        try:
            options = dict(_uv_options(ctap.info, req.user_verification) or {})
            if req.resident_key:
                if not ctap.info.options.get("rk"):
                    problems.append(MfaError("This security key cannot store a discoverable credential"))
                    continue
                options["rk"] = True
            exclude = None
            if req.credentials:
                probe = _probe(ctap, req.rp_id, req.credentials, exchange)
                if probe.found:
                    problems.append(_ctap_error(CtapError(CtapError.ERR.CREDENTIAL_EXCLUDED), exchange))
                    continue
                if probe.found is None:
                    exclude = req.credentials  # the key checks the list itself
            exchange.notify_touch()
            response = ctap.make_credential(
                req.client_data_hash,
                req.rp,
                req.user,
                list(req.key_params),
                exclude,
                options=options or None,
                event=exchange.cancel,
            )
        except MfaError as exc:
            problems.append(exc)
            continue
        except CtapError as exc:
            raise _ctap_error(exc, exchange) from exc
        except (OSError, ConnectionFailure) as exc:
            problems.append(_device_lost(exc))
            continue
        auth_data = response.auth_data
        if auth_data.credential_data is None:
            raise MfaError("The security key returned no credential", hint=RETRY_HINT)
        fmt, att_stmt = response.fmt, dict(response.att_stmt)
        if req.attestation == "none":
            # As browsers do: drop the attestation statement the gateway did not ask for.
            fmt, att_stmt = "none", {}
        attestation_object = cbor.encode({"fmt": fmt, "authData": bytes(auth_data), "attStmt": att_stmt})
        body = {
            "clientDataJSON": b64url_encode(req.client_data),
            "attestationObject": b64url_encode(attestation_object),
            "transports": ["usb"],
        }
        return _credential_json(bytes(auth_data.credential_data.credential_id), body)
    if problems:
        raise problems[0]
    if unusable == len(devices):
        raise _unusable(unusable)
    raise MfaError(
        "No connected security key can create a WebAuthn credential",
        hint="Insert a FIDO2 security key and try again.",
    )


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


# -- the async API -----------------------------------------------------------------------------


async def _run_exchange(
    work: Callable[[Sequence[Any], _Request, _Exchange], _T],
    req: _Request,
    devices: Sequence[Any] | None,
    on_touch: Callable[[], None] | None,
) -> _T:
    owned = devices is None
    if devices is None:
        devices = await anyio.to_thread.run_sync(find_devices)
    if not devices:
        raise MfaError(
            "No security key found",
            hint="Insert your security key and try again, or use a TOTP or backup code.",
        )
    exchange = _Exchange(on_touch)
    found: Sequence[Any] = devices

    def run() -> _T:
        try:
            return work(found, req, exchange)
        finally:
            if owned:  # keys we opened are closed by the thread that used them, even if abandoned
                for device in found:
                    device.close()

    try:
        with anyio.move_on_after(req.timeout):
            return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    finally:
        # On a deadline or a cancel: fido2 sends CTAPHID_CANCEL, the key stops blinking.
        exchange.cancel.set()
    raise MfaError(f"No answer from the security key within {req.timeout:g} s", hint=RETRY_HINT)


async def get_assertion(
    public_key: Mapping[str, Any],
    origin: str,
    *,
    devices: Sequence[Any] | None = None,
    timeout: float = 60.0,  # noqa: ASYNC109 - the deadline must also cancel the key, see _run_exchange
    on_touch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Sign the gateway's challenge with a security key: the ``assertion_response`` JSON.

    ``public_key`` is ``options.publicKey`` from the gateway, ``origin`` its base URL.  Keys are tried
    in order (``devices``, default: every USB key found) until one holds an allowed credential, probed
    without a touch; ``on_touch`` runs on the event loop just before that key waits for the user.  The
    deadline is ``timeout`` seconds, or the options' shorter ``timeout``.
    """
    req = _assertion_request(public_key, origin, timeout)
    return await _run_exchange(_assert_blocking, req, devices, on_touch)


async def create_credential(
    public_key: Mapping[str, Any],
    origin: str,
    *,
    devices: Sequence[Any] | None = None,
    timeout: float = 60.0,  # noqa: ASYNC109 - the deadline must also cancel the key, see _run_exchange
    on_touch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Register a security key with the gateway: the ``registration_response`` JSON.

    Keys that already hold one of ``excludeCredentials`` are skipped; the first other key is used.
    Attestation is passed on only when the gateway asks for it (otherwise ``fmt: "none"``).
    """
    req = _registration_request(public_key, origin, timeout)
    return await _run_exchange(_register_blocking, req, devices, on_touch)
