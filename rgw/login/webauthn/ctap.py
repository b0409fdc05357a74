"""The CTAP2 side of WebAuthn: USB keys, the blocking exchange in a worker thread, and its errors.

``find_devices`` opens the USB HID keys; ``run_exchange`` runs one ceremony (``assert_blocking``, or
``rgw.testing.enrol``'s registration) in a worker thread under the request's deadline.  Each key is first probed
without a touch (``up: false``) for the credentials the gateway names, so only a key that can answer
blinks; a deadline or a cancellation sets the exchange's ``threading.Event``, which fido2 turns into a
CTAPHID cancel.  CTAP and HID failures are translated into ``MfaError`` with a hint here, at one
boundary.  fido2 is imported only inside functions: CLI start-up must not pay for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.from_thread

from rgw import aio
from rgw.errors import MfaError
from rgw.login.webauthn.messages import CeremonyRequest, assertion_json

if TYPE_CHECKING:
    from fido2.ctap import CtapError
    from fido2.ctap2.base import Ctap2, Info

__all__ = ["assert_blocking", "find_devices", "run_exchange"]

_T = TypeVar("_T")

INSTALL_HINT = "pip install 'rgw[webauthn]'"
RETRY_HINT = "Run the command again and touch your security key when it blinks."
OTHER_METHOD_HINT = "Use a TOTP or backup code instead, or register a key without a PIN requirement."


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


def _first_key(
    devices: Sequence[Any], exchange: _Exchange, attempt: Callable[[Ctap2], _T | None], nothing: MfaError
) -> _T:
    """The result of ``attempt`` on the first key that gives one (worker thread).

    ``attempt`` returns None to pass a key by, or raises ``MfaError`` for a problem with that key
    (the next key is tried; the first problem is reported if none works).  Any other ``CtapError``
    ends the ceremony at once; a key that is unplugged midway counts as a problem.
    """
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
            result = attempt(ctap)
        except MfaError as exc:
            problems.append(exc)
            continue
        except CtapError as exc:
            raise _ctap_error(exc, exchange) from exc
        except (OSError, ConnectionFailure) as exc:
            problems.append(_device_lost(exc))
            continue
        if result is not None:
            return result
    if problems:
        raise problems[0]
    if unusable == len(devices):
        raise _unusable(unusable)
    raise nothing


def assert_blocking(devices: Sequence[Any], req: CeremonyRequest, exchange: _Exchange) -> dict[str, Any]:
    """Sign with the first of ``devices`` that holds an allowed credential (worker thread)."""
    _require_fido2()
    from fido2.ctap import CtapError

    def attempt(ctap: Ctap2) -> tuple[Any, _Probe] | None:
        options = _uv_options(ctap.info, req.user_verification)
        probe = _probe(ctap, req.rp_id, req.credentials, exchange)
        if probe.found is False:
            return None
        exchange.notify_touch()
        try:
            response = ctap.get_assertion(
                req.rp_id, req.client_data_hash, probe.allow, options=options, event=exchange.cancel
            )
        except CtapError as exc:
            if exc.code == CtapError.ERR.NO_CREDENTIALS:
                return None
            raise
        return response, probe

    response, probe = _first_key(
        devices,
        exchange,
        attempt,
        MfaError(
            f"No connected security key is registered for {req.rp_id}",
            hint="Insert the security key you registered with this gateway, or use a TOTP or backup code.",
        ),
    )
    if response.credential:
        credential_id = bytes(response.credential["id"])
    elif probe.allow:
        credential_id = probe.allow[0]["id"]
    else:
        raise MfaError("The security key did not say which credential it used", hint=RETRY_HINT)
    user_handle = response.user.get("id") if response.user else None
    return assertion_json(req, credential_id, bytes(response.auth_data), bytes(response.signature), user_handle)


# -- from the event loop -----------------------------------------------------------------------


async def run_exchange(
    work: Callable[[Sequence[Any], CeremonyRequest, _Exchange], _T],
    req: CeremonyRequest,
    devices: Sequence[Any] | None,
    on_touch: Callable[[], None] | None,
) -> _T:
    """Run ``work`` on ``devices`` (default: every USB key found) in a worker thread within ``req.timeout``.

    On the deadline or a cancellation the key is told to stop (CTAPHID cancel) and the thread abandoned.
    """
    owned = devices is None
    if devices is None:
        devices = await aio.call(find_devices)
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
            return await aio.call(run, abandon=True)
    finally:
        # On a deadline or a cancel: fido2 sends CTAPHID_CANCEL, the key stops blinking.
        exchange.cancel.set()
    raise MfaError(f"No answer from the security key within {req.timeout:g} s", hint=RETRY_HINT)
