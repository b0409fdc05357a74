"""A software FIDO2 security key, so the real fido2 code path runs end to end without hardware.

``SoftAuthenticator`` implements fido2's ``CtapDevice`` (the transport under ``fido2.ctap2.Ctap2``):
``call(CTAPHID.CBOR, ...)`` answers authenticatorGetInfo, authenticatorMakeCredential,
authenticatorGetAssertion and authenticatorGetNextAssertion with canonical CBOR, real ES256 (P-256)
signatures and spec-shaped authenticatorData; every other command gets the CTAP error a key without
that feature returns.  Credentials live in memory (``credentials``), the AAGUID is all zeros, and
user presence is a switch (``user_present``, ``touch_delay``) so tests can play an absent user or a
slow touch.  It holds no PIN; ``uv=True`` plays a key with built-in verification (a fingerprint).
"""

from __future__ import annotations

import hashlib
import secrets
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.cose import ES256
from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.ctap2.base import Ctap2
from fido2.hid import CAPABILITY, CTAPHID

__all__ = ["SoftAuthenticator", "SoftCredential"]

ERR = CtapError.ERR
CMD = Ctap2.CMD

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_AT = 0x40

AAGUID = b"\0" * 16
MAX_MSG_SIZE = 1200
MAX_CRED_ID_LENGTH = 128


class _Refusal(Exception):
    """A CTAP status to answer instead of a result."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class SoftCredential:
    """One credential the soft key holds: a P-256 key pair bound to an RP ID and a user handle."""

    credential_id: bytes
    rp_id: str
    user_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    resident: bool = False
    user_name: str | None = None
    sign_count: int = 0

    @property
    def cose_public_key(self) -> ES256:
        numbers = self.private_key.public_key().public_numbers()
        return ES256({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message, ec.ECDSA(hashes.SHA256()))


@dataclass
class _PendingAssertions:
    """What authenticatorGetNextAssertion hands out after a discoverable-credential getAssertion."""

    rp_id_hash: bytes
    client_data_hash: bytes
    flags: int
    remaining: list[SoftCredential] = field(default_factory=list)


class SoftAuthenticator(CtapDevice):
    """A CTAP2.0 authenticator in memory, usable as ``Ctap2(SoftAuthenticator())``.

    ``user_present=False`` makes every user-presence check fail with ``presence_error``
    (CTAP2_ERR_USER_ACTION_TIMEOUT by default; CTAP2_ERR_OPERATION_DENIED plays a refused touch).
    ``touch_delay`` seconds pass before a touch "happens"; setting the caller's cancel event meanwhile
    ends the wait with CTAP2_ERR_KEEPALIVE_CANCEL, as a real key does on CTAPHID_CANCEL.
    ``touch_requests`` counts the touches asked for, ``cancellations`` the waits a cancel ended;
    ``commands`` records every CTAP command byte.
    """

    def __init__(
        self,
        *,
        user_present: bool = True,
        presence_error: int = ERR.USER_ACTION_TIMEOUT,
        touch_delay: float = 0.0,
        uv: bool = False,
        attestation: Literal["packed", "none"] = "packed",
        max_creds_in_list: int = 8,
        credentials: dict[bytes, SoftCredential] | None = None,
        name: str = "soft",
    ) -> None:
        self.user_present = user_present
        self.presence_error = presence_error
        self.touch_delay = touch_delay
        self.uv = uv
        self.attestation = attestation
        self.max_creds_in_list = max_creds_in_list
        self.credentials: dict[bytes, SoftCredential] = {} if credentials is None else credentials
        self.name = name
        self.touch_requests = 0
        self.cancellations = 0
        self.commands: list[int] = []
        self._pending: _PendingAssertions | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SoftAuthenticator({self.name!r}, credentials={len(self.credentials)})"

    # -- CtapDevice ----------------------------------------------------------------------------

    @property
    def capabilities(self) -> int:
        # CBOR (CTAP2) and WINK; NMSG: no CTAP1/U2F messages.
        return int(CAPABILITY.CBOR | CAPABILITY.WINK | CAPABILITY.NMSG)

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: threading.Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        if cmd == CTAPHID.PING:
            return data
        if cmd == CTAPHID.WINK:
            return b""
        if cmd != CTAPHID.CBOR:
            # What the HID layer raises for a CTAPHID_ERROR packet.
            raise CtapError(ERR.INVALID_COMMAND)
        if not data:
            return bytes([ERR.INVALID_LENGTH])
        if len(data) > MAX_MSG_SIZE:
            return bytes([ERR.REQUEST_TOO_LARGE])
        with self._lock:
            self.commands.append(data[0])
            try:
                result = self._dispatch(data[0], data[1:], event or threading.Event(), on_keepalive)
            except _Refusal as refusal:
                return bytes([refusal.code])
        return b"\0" + (cbor.encode(result) if result is not None else b"")

    def close(self) -> None:
        """Nothing to release: the key lives in memory."""

    @classmethod
    def list_devices(cls) -> Iterator[SoftAuthenticator]:
        """Soft keys are never discovered; tests pass them in."""
        return iter(())

    # -- commands ------------------------------------------------------------------------------

    def _dispatch(
        self,
        command: int,
        payload: bytes,
        event: threading.Event,
        on_keepalive: Callable[[STATUS], None] | None,
    ) -> dict[int, Any] | None:
        if command == CMD.GET_INFO:
            return self._get_info()
        if command == CMD.MAKE_CREDENTIAL:
            return self._make_credential(_decode_params(payload), event, on_keepalive)
        if command == CMD.GET_ASSERTION:
            return self._get_assertion(_decode_params(payload), event, on_keepalive)
        if command == CMD.GET_NEXT_ASSERTION:
            return self._get_next_assertion()
        # clientPin, reset, credentialManagement, selection, ...: a key without them says so.
        raise _Refusal(ERR.INVALID_COMMAND)

    def _get_info(self) -> dict[int, Any]:
        options: dict[str, bool] = {"rk": True, "up": True, "plat": False}
        if self.uv:
            options["uv"] = True
        return {
            1: ["FIDO_2_0"],
            3: AAGUID,
            4: options,
            5: MAX_MSG_SIZE,
            7: self.max_creds_in_list,
            8: MAX_CRED_ID_LENGTH,
            9: ["usb"],
            10: [{"alg": -7, "type": "public-key"}],
        }

    def _make_credential(
        self,
        params: Mapping[int, Any],
        event: threading.Event,
        on_keepalive: Callable[[STATUS], None] | None,
    ) -> dict[int, Any]:
        client_data_hash = _required(params, 1, bytes)
        rp = _required(params, 2, dict)
        user = _required(params, 3, dict)
        key_params = _required(params, 4, list)
        exclude_list = _optional(params, 5, list) or []
        options = _optional(params, 7, dict) or {}
        rp_id = rp.get("id")
        user_id = user.get("id")
        if not isinstance(rp_id, str) or not isinstance(user_id, bytes):
            raise _Refusal(ERR.CBOR_UNEXPECTED_TYPE)
        if len(user_id) > 64:
            raise _Refusal(ERR.INVALID_PARAMETER)
        self._check_pin_uv_param(params.get(8), event, on_keepalive)
        if not any(isinstance(p, dict) and p.get("type") == "public-key" and p.get("alg") == -7 for p in key_params):
            raise _Refusal(ERR.UNSUPPORTED_ALGORITHM)
        if options.get("up") is not None:
            raise _Refusal(ERR.INVALID_OPTION)  # up is not an option of makeCredential
        uv = self._uv_option(options)
        resident = bool(options.get("rk", False))

        if any(self._owned(d, rp_id) for d in exclude_list):
            self._await_presence(event, on_keepalive)
            raise _Refusal(ERR.CREDENTIAL_EXCLUDED)
        self._await_presence(event, on_keepalive)

        name = user.get("name")
        credential = SoftCredential(
            credential_id=secrets.token_bytes(32),
            rp_id=rp_id,
            user_id=user_id,
            private_key=ec.generate_private_key(ec.SECP256R1()),
            resident=resident,
            user_name=name if isinstance(name, str) else None,
        )
        if resident:
            # A new discoverable credential replaces the old one for the same RP and user.
            for old in [c for c in self.credentials.values() if c.resident and c.rp_id == rp_id]:
                if old.user_id == user_id:
                    del self.credentials[old.credential_id]
        self.credentials[credential.credential_id] = credential
        credential.sign_count += 1

        attested = (
            AAGUID
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + cbor.encode(credential.cose_public_key)
        )
        flags = FLAG_UP | FLAG_AT | (FLAG_UV if uv else 0)
        auth_data = _rp_id_hash(rp_id) + struct.pack(">BI", flags, credential.sign_count) + attested
        if self.attestation == "none":
            return {1: "none", 2: auth_data, 3: {}}
        # Packed self-attestation: signed by the credential's own key, no certificate.
        signature = credential.sign(auth_data + client_data_hash)
        return {1: "packed", 2: auth_data, 3: {"alg": -7, "sig": signature}}

    def _get_assertion(
        self,
        params: Mapping[int, Any],
        event: threading.Event,
        on_keepalive: Callable[[STATUS], None] | None,
    ) -> dict[int, Any]:
        rp_id = _required(params, 1, str)
        client_data_hash = _required(params, 2, bytes)
        allow_list = _optional(params, 3, list)
        options = _optional(params, 5, dict) or {}
        self._check_pin_uv_param(params.get(6), event, on_keepalive)
        if "rk" in options:
            raise _Refusal(ERR.UNSUPPORTED_OPTION)
        up = options.get("up", True)
        if not isinstance(up, bool):
            raise _Refusal(ERR.CBOR_UNEXPECTED_TYPE)
        uv = self._uv_option(options)

        if allow_list:
            found = [self.credentials[d["id"]] for d in allow_list if self._owned(d, rp_id)]
            found = found[:1]
        else:
            found = [c for c in self.credentials.values() if c.resident and c.rp_id == rp_id]
            found.reverse()  # most recently created first
        if not found:
            raise _Refusal(ERR.NO_CREDENTIALS)
        if up:
            self._await_presence(event, on_keepalive)

        flags = (FLAG_UP if up else 0) | (FLAG_UV if uv else 0)
        pending = _PendingAssertions(_rp_id_hash(rp_id), client_data_hash, flags, found[1:])
        self._pending = pending if pending.remaining else None
        response = self._assert(found[0], pending, include_user=not allow_list)
        if len(found) > 1:
            response[5] = len(found)
        return response

    def _get_next_assertion(self) -> dict[int, Any]:
        pending = self._pending
        if pending is None or not pending.remaining:
            raise _Refusal(ERR.NOT_ALLOWED)
        credential = pending.remaining.pop(0)
        if not pending.remaining:
            self._pending = None
        return self._assert(credential, pending, include_user=True)

    def _assert(self, credential: SoftCredential, pending: _PendingAssertions, *, include_user: bool) -> dict[int, Any]:
        credential.sign_count += 1
        auth_data = pending.rp_id_hash + struct.pack(">BI", pending.flags, credential.sign_count)
        response: dict[int, Any] = {
            1: {"id": credential.credential_id, "type": "public-key"},
            2: auth_data,
            3: credential.sign(auth_data + pending.client_data_hash),
        }
        if include_user or credential.resident:
            user: dict[str, Any] = {"id": credential.user_id}
            if pending.flags & FLAG_UV and credential.user_name:
                user["name"] = credential.user_name  # identifying data only after verification
            response[4] = user
        return response

    # -- checks --------------------------------------------------------------------------------

    def _owned(self, descriptor: Any, rp_id: str) -> bool:
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("id"), bytes):
            raise _Refusal(ERR.CBOR_UNEXPECTED_TYPE)
        if descriptor.get("type") != "public-key":
            return False
        credential = self.credentials.get(descriptor["id"])
        return credential is not None and credential.rp_id == rp_id

    def _uv_option(self, options: Mapping[str, Any]) -> bool:
        uv = options.get("uv", False)
        if not isinstance(uv, bool):
            raise _Refusal(ERR.CBOR_UNEXPECTED_TYPE)
        if uv and not self.uv:
            raise _Refusal(ERR.UNSUPPORTED_OPTION)
        return uv

    def _check_pin_uv_param(
        self, pin_uv_param: Any, event: threading.Event, on_keepalive: Callable[[STATUS], None] | None
    ) -> None:
        if pin_uv_param is None:
            return
        if pin_uv_param == b"":
            # The platform's "touch to select this key" probe: a touch, then "no PIN set".
            self._await_presence(event, on_keepalive)
            raise _Refusal(ERR.PIN_NOT_SET)
        raise _Refusal(ERR.PIN_AUTH_INVALID)

    def _await_presence(self, event: threading.Event, on_keepalive: Callable[[STATUS], None] | None) -> None:
        self.touch_requests += 1
        if on_keepalive is not None:
            on_keepalive(STATUS.UPNEEDED)
        if (self.touch_delay > 0 and event.wait(self.touch_delay)) or event.is_set():
            self.cancellations += 1
            raise _Refusal(ERR.KEEPALIVE_CANCEL)
        if not self.user_present:
            raise _Refusal(self.presence_error)


def _rp_id_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode()).digest()


def _decode_params(payload: bytes) -> Mapping[int, Any]:
    if not payload:
        raise _Refusal(ERR.MISSING_PARAMETER)
    try:
        params = cbor.decode(payload)
    except Exception as exc:  # fido2.cbor raises ValueError, KeyError, IndexError, struct.error
        raise _Refusal(ERR.INVALID_CBOR) from exc
    if not isinstance(params, dict):
        raise _Refusal(ERR.CBOR_UNEXPECTED_TYPE)
    return params


def _required(params: Mapping[int, Any], key: int, kind: type[Any]) -> Any:
    if key not in params:
        raise _Refusal(ERR.MISSING_PARAMETER)
    return _optional(params, key, kind)


def _optional(params: Mapping[int, Any], key: int, kind: type[Any]) -> Any:
    value = params.get(key)
    if value is not None and not isinstance(value, kind):
        raise _Refusal(ERR.CBOR_UNEXPECTED_TYPE)
    return value
