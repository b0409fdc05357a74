"""Helpers for the reference gateway tests: a settable clock, a minimal WebAuthn key, login shortcuts."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import uuid
from typing import Any

import httpx
import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor

from rgw.testing import RunningGateway

START = "/api/v1/auth/cli/start"
COMPLETE = "/api/v1/auth/cli/complete"
CLI_MFA = "/api/v1/auth/cli/mfa"
DEVICE_ID = str(uuid.UUID("8f4c4b8c-1111-4222-8333-444455556666"))


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def complete_body(start: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {
        "state": start["state"],
        "code_verifier": start["code_verifier"],
        "device_id": DEVICE_ID,
        "device_name": "test-host",
        "device_os": "linux",
        "client_version": "rgw-test",
    }
    body.update(extra)
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def totp_at(secret: str, clock: FakeClock, offset: int = 0) -> str:
    """The TOTP code `offset` seconds from the clock's now."""
    return pyotp.TOTP(secret).at(int(clock()) + offset)


def login(
    client: httpx.Client, gw: RunningGateway, email: str = "developer@example.com", totp_code: str | None = None
) -> dict[str, Any]:
    """Log `email` in through the API (sign-in marked by the gateway object); the 200 body."""
    start = client.post(START).json()
    gw.gateway.complete_browser_login(start["state"], email)
    if totp_code is not None:
        r = client.post(CLI_MFA, json={"state": start["state"], "method": "totp", "code": totp_code})
        assert r.status_code == 200, r.text
    r = client.post(COMPLETE, json=complete_body(start))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MiniKey:
    """A bare software security key: 'none' attestation registration and ES256 assertions."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0

    def _cose(self) -> bytes:
        numbers = self.private.public_key().public_numbers()
        return cbor.encode({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def register(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        public_key = options["publicKey"]
        rp_id = public_key["rp"]["id"]
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([0x41])
            + struct.pack(">I", 0)
            + b"\0" * 16
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose()
        )
        attestation = cbor.encode({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", public_key["challenge"], origin)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["usb"],
            },
            "clientExtensionResults": {},
        }

    def get_assertion(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        public_key = options["publicKey"]
        self.sign_count += 1
        auth_data = (
            hashlib.sha256(public_key["rpId"].encode()).digest() + bytes([0x01]) + struct.pack(">I", self.sign_count)
        )
        client_data = self._client_data("webauthn.get", public_key["challenge"], origin)
        signature = self.private.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": None,
            },
            "clientExtensionResults": {},
        }


class Authenticator:
    """An authenticator app on the hand-moved clock: every code is from a fresh 30 s step, and 61 s
    pass before each, so no two codes share a step and at most 5 fall in any 5 minutes."""

    def __init__(self, secret: str, clock: FakeClock) -> None:
        self.secret = secret
        self.clock = clock

    def code(self) -> str:
        self.clock.advance(61)
        return totp_at(self.secret, self.clock)


def mfa_session(client: httpx.Client, gw: RunningGateway, email: str, clock: FakeClock) -> tuple[str, Authenticator]:
    """A user enrolled in TOTP (enrolled now unless already) logged in with MFA: its session token
    and authenticator."""
    secret = gw.gateway.totp_secret(email) or gw.gateway.enroll_totp(email)
    app = Authenticator(secret, clock)
    return login(client, gw, email, totp_code=app.code())["token"], app
