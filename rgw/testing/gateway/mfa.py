"""MFA of the reference gateway: TOTP, backup codes, WebAuthn, lock-out and challenges.

TOTP codes (pyotp) are accepted one step either side of the gateway's clock and each code only once
(the last accepted time step is remembered per method); backup codes are single use; five failures in
five minutes lock a user out of MFA for the rest of that window.  WebAuthn ceremonies use py_webauthn
with the request's own base URL: rp_id = its hostname, expected origin = `scheme://host:port`.  Pending
WebAuthn challenges live in memory, keyed by an opaque `session_data` string, and are single use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyotp
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import PublicKeyCredentialDescriptor

from .settings import GatewaySettings
from .store import Store

LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = 300.0
CHALLENGE_TTL = 300.0
TOTP_STEP = 30
LOCKOUT_MESSAGE = "Too many failed MFA attempts. Try again in 5 minutes."
_TOTP_RE = re.compile(r"^\d{6}$")


class MfaError(Exception):
    """An MFA failure; `code` is the wire error (`invalid_code`, `session_expired`, ...)."""

    def __init__(self, code: str, status: int = 400, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.message = message


def too_many_attempts() -> MfaError:
    return MfaError("too_many_attempts", 429, LOCKOUT_MESSAGE)


@dataclass(frozen=True)
class Challenge:
    email: str
    kind: str  # register | assert
    challenge: bytes
    rp_id: str
    origin: str
    expires_at: float


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _normalise_backup(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


def _b64_key(value: str) -> str:
    return value.rstrip("=")


class MfaService:
    """MFA state of every user; thread-safe."""

    def __init__(self, store: Store, settings: GatewaySettings) -> None:
        self._store = store
        self._settings = settings
        self._lock = threading.RLock()
        self._challenges: dict[str, Challenge] = {}

    def _now(self) -> float:
        return self._settings.clock()

    # enrolment
    def enroll_totp(self, email: str) -> str:
        secret = pyotp.random_base32()
        with self._lock:
            self._store.execute("DELETE FROM mfa_methods WHERE email = ? AND type = 'totp'", (email,))
            self._store.add_mfa_method(email, "totp", "Authenticator app", self._now(), secret=secret)
        return secret

    def totp_secret(self, email: str) -> str | None:
        for method in self._store.mfa_methods(email):
            if method.type == "totp":
                return method.secret
        return None

    def generate_backup_codes(self, email: str, count: int = 10) -> list[str]:
        codes = [f"{secrets.token_hex(3)[:5]}-{secrets.token_hex(3)[:5]}" for _ in range(count)]
        with self._lock:
            self._store.execute("DELETE FROM backup_codes WHERE email = ?", (email,))
            for code in codes:
                self._store.execute(
                    "INSERT INTO backup_codes (email, code_hash) VALUES (?, ?)",
                    (email, _digest(_normalise_backup(code))),
                )
        return codes

    def enrolled(self, email: str) -> bool:
        return bool(self._store.mfa_methods(email))

    def method_names(self, email: str) -> list[str]:
        kinds = {m.type for m in self._store.mfa_methods(email)}
        names: list[str] = [k for k in ("totp", "webauthn") if k in kinds]
        unused = self._store.row(
            "SELECT COUNT(*) FROM backup_codes WHERE email = ? AND used_at IS NULL", (email,)
        )
        if unused is not None and unused[0] > 0:
            names.append("backup_code")
        return names

    # lock-out
    def locked(self, email: str) -> bool:
        since = self._now() - LOCKOUT_WINDOW
        row = self._store.row("SELECT COUNT(*) FROM mfa_failures WHERE email = ? AND at > ?", (email, since))
        return row is not None and row[0] >= LOCKOUT_FAILURES

    def _fail(self, email: str) -> MfaError:
        self._store.execute("INSERT INTO mfa_failures VALUES (?, ?)", (email, self._now()))
        return too_many_attempts() if self.locked(email) else MfaError("invalid_code")

    def _succeed(self, email: str) -> None:
        self._store.execute("DELETE FROM mfa_failures WHERE email = ?", (email,))

    # codes
    def verify_code(self, email: str, code: str | None) -> None:
        """Accept a TOTP or backup code once, or raise MfaError."""
        if not code or not code.strip():
            raise MfaError("code_required")
        with self._lock:
            if self.locked(email):
                raise too_many_attempts()
            code = code.strip().replace(" ", "")
            ok = self._use_totp(email, code) if _TOTP_RE.match(code) else self._use_backup(email, code)
            if not ok:
                raise self._fail(email)
            self._succeed(email)

    def _use_totp(self, email: str, code: str) -> bool:
        now = self._now()
        step = int(now // TOTP_STEP)
        for method in self._store.mfa_methods(email):
            if method.type != "totp" or not method.secret:
                continue
            totp = pyotp.TOTP(method.secret)
            for counter in (step - 1, step, step + 1):
                if hmac.compare_digest(totp.generate_otp(counter), code):
                    if counter <= method.last_counter:
                        return False  # each code is usable once
                    self._store.execute(
                        "UPDATE mfa_methods SET last_counter = ?, last_used_at = ? WHERE id = ?",
                        (counter, now, method.id),
                    )
                    return True
        return False

    def _use_backup(self, email: str, code: str) -> bool:
        cur = self._store.execute(
            "UPDATE backup_codes SET used_at = ? WHERE id = (SELECT id FROM backup_codes"
            " WHERE email = ? AND code_hash = ? AND used_at IS NULL LIMIT 1)",
            (self._now(), email, _digest(_normalise_backup(code))),
        )
        return cur.rowcount == 1

    # WebAuthn
    def _new_challenge(self, email: str, kind: str, challenge: bytes, base_url: str) -> str:
        parts = urlsplit(base_url)
        session_data = secrets.token_urlsafe(32)
        now = self._now()
        with self._lock:
            self._challenges = {k: c for k, c in self._challenges.items() if c.expires_at > now}
            self._challenges[session_data] = Challenge(
                email, kind, challenge, parts.hostname or "localhost",
                f"{parts.scheme}://{parts.netloc}", now + CHALLENGE_TTL,
            )
        return session_data

    def _take_challenge(self, session_data: Any, email: str, kind: str) -> Challenge:
        if not isinstance(session_data, str) or not session_data:
            raise MfaError("session_incomplete")
        with self._lock:
            found = self._challenges.pop(session_data, None)
        if found is None or found.email != email or found.kind != kind or found.expires_at <= self._now():
            raise MfaError("session_expired")
        return found

    def registration_start(self, email: str, display_name: str, base_url: str) -> dict[str, Any]:
        rp_id = urlsplit(base_url).hostname or "localhost"
        existing = [
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(m.credential_id))
            for m in self._store.mfa_methods(email) if m.type == "webauthn" and m.credential_id
        ]
        options = generate_registration_options(
            rp_id=rp_id, rp_name="Rack Gateway", user_name=email, user_display_name=display_name,
            user_id=hashlib.sha256(email.encode()).digest()[:16], exclude_credentials=existing,
        )
        session_data = self._new_challenge(email, "register", options.challenge, base_url)
        return {"options": {"publicKey": json.loads(options_to_json(options))}, "session_data": session_data}

    def registration_finish(self, email: str, session_data: Any, response: Any, label: str) -> int:
        if not isinstance(response, dict | str) or not response:
            raise MfaError("session_incomplete")
        challenge = self._take_challenge(session_data, email, "register")
        try:
            verified = verify_registration_response(
                credential=response, expected_challenge=challenge.challenge,
                expected_rp_id=challenge.rp_id, expected_origin=challenge.origin,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise MfaError("invalid_registration", message=str(exc)) from exc
        return self._store.add_mfa_method(
            email, "webauthn", label or "Security key", self._now(),
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key), sign_count=verified.sign_count,
        )

    def assertion_start(self, email: str, base_url: str) -> dict[str, Any]:
        creds = [m for m in self._store.mfa_methods(email) if m.type == "webauthn" and m.credential_id]
        if not creds:
            raise MfaError("webauthn_not_enrolled")
        options = generate_authentication_options(
            rp_id=urlsplit(base_url).hostname or "localhost",
            allow_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(m.credential_id or ""))
                               for m in creds],
        )
        session_data = self._new_challenge(email, "assert", options.challenge, base_url)
        return {"options": {"publicKey": json.loads(options_to_json(options))}, "session_data": session_data}

    def assertion_verify(self, email: str, session_data: Any, response: Any) -> None:
        if isinstance(response, str):
            try:
                response = json.loads(response)
            except ValueError:
                response = None
        if not isinstance(response, dict) or not response:
            raise MfaError("session_incomplete")
        with self._lock:
            if self.locked(email):
                raise too_many_attempts()
            challenge = self._take_challenge(session_data, email, "assert")
            raw_id = _b64_key(str(response.get("rawId") or response.get("id") or ""))
            method = next((m for m in self._store.mfa_methods(email)
                           if m.type == "webauthn" and _b64_key(m.credential_id or "") == raw_id), None)
            if method is None or method.public_key is None:
                raise self._fail(email)
            try:
                verified = verify_authentication_response(
                    credential=response, expected_challenge=challenge.challenge,
                    expected_rp_id=challenge.rp_id, expected_origin=challenge.origin,
                    credential_public_key=base64url_to_bytes(method.public_key),
                    credential_current_sign_count=method.sign_count,
                )
            except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
                raise self._fail(email) from exc
            self._store.execute(
                "UPDATE mfa_methods SET sign_count = ?, last_used_at = ? WHERE id = ?",
                (verified.new_sign_count, self._now(), method.id),
            )
            self._succeed(email)

