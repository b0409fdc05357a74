"""MFA of the reference gateway: TOTP, backup codes, WebAuthn, attempt limits, lock-out, challenges.

As the deployed Go gateway does (`internal/gateway/auth/mfa/{totp,service,webauthn_assertion}.go`):
TOTP codes are accepted for the time steps -1, 0 and +1 around the gateway's clock, and each step once
per user (a replayed step is a failure); backup codes are single use; a user gets at most 5 TOTP/backup
attempts and 5 WebAuthn attempts per 5 minutes, successes included (the sixth is refused, and logged
as a failure); and a failure that makes 5 failures (both kinds) in 5 minutes locks the user until an
administrator unlocks it.  A locked user's sessions fail with `authentication failed: user locked`
(see sessions.py).  WebAuthn ceremonies use py_webauthn with the request's own base URL: rp_id = its
hostname, expected origin = `scheme://host:port`.  Pending WebAuthn challenges live in memory, keyed
by an opaque `session_data` string, and are single use.
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

ATTEMPT_LIMIT = 5  # attempts of one kind (TOTP/backup code, or WebAuthn) per user per window
FAILURE_LIMIT = 5  # failures of both kinds per user per window that lock the user
ATTEMPT_WINDOW = 300.0
CHALLENGE_TTL = 300.0
TOTP_STEP = 30
LOCK_REASON = "Automatic lock: 5 failed MFA attempts in 5 minutes"
ATTEMPTS_MESSAGE = "Too many MFA attempts (at most 5 in 5 minutes, successes included). Try again in 5 minutes."
LOCKED_MESSAGE = "Too many failed MFA attempts: the account is locked until an administrator unlocks it."
# The deployed gateway's own error texts (err.Error() of its MFA service).
GO_FAILED = "verification failed"
GO_TOO_MANY = "too many attempts - try again in 5 minutes"
GO_LOCKED_NOW = "account locked due to multiple failed attempts - contact administrator"
GO_LOCKED = "account locked - contact administrator"
GO_ASSERTION_FAILED = "failed to validate assertion"
_TOTP_RE = re.compile(r"^\d{6}$")
_EXT_STATUS = {"too_many_attempts": 429, "account_locked": 403}
_EXT_MESSAGE = {"too_many_attempts": ATTEMPTS_MESSAGE, "account_locked": LOCKED_MESSAGE}


class MfaError(Exception):
    """An MFA failure.

    `code` is the reference gateway's wire error (`invalid_code`, `too_many_attempts`,
    `account_locked`, `session_expired`, ...) with its `status` and `message`; `detail` is what the
    deployed gateway's MFA service says for it, which deployed-mode routes answer instead.
    """

    def __init__(
        self, code: str, status: int | None = None, message: str | None = None, detail: str | None = None
    ) -> None:
        super().__init__(code)
        self.code = code
        self.status = status if status is not None else _EXT_STATUS.get(code, 400)
        self.message = message if message is not None else _EXT_MESSAGE.get(code)
        self.detail = detail if detail is not None else code

    @property
    def verification_failed(self) -> bool:
        """A code or assertion was checked and refused (or refused unchecked: limit, lock)."""
        return self.code in ("invalid_code", "too_many_attempts", "account_locked")


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

    def unused_totp_code(self, email: str) -> str:
        """A code of ``email``'s TOTP secret that this gateway takes now: of the next time step, else
        of this one, else of the last, whichever it has not accepted yet (each step is taken once).
        The next step first, so that a step that ends before the code is checked does not matter."""
        secret = self.totp_secret(email)
        if secret is None:
            raise LookupError(f"{email} has no TOTP method")
        step = int(self._now() // TOTP_STEP)
        used = {row[0] for row in self._store.rows("SELECT step FROM used_totp_steps WHERE email = ?", (email,))}
        for counter in (step + 1, step, step - 1):
            if counter not in used:
                return str(pyotp.TOTP(secret).generate_otp(counter))
        raise LookupError(f"every TOTP step this gateway takes now was used by {email}")

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
        unused = self._store.row("SELECT COUNT(*) FROM backup_codes WHERE email = ? AND used_at IS NULL", (email,))
        if unused is not None and unused[0] > 0:
            names.append("backup_code")
        return names

    # attempt limits and lock-out
    def locked(self, email: str) -> bool:
        """Whether `email` is locked (after too many failed MFA attempts, until unlocked)."""
        user = self._store.user(email)
        return user is not None and user.locked_at is not None

    def unlock(self, email: str) -> None:
        """Clear a lock.  Recent attempts still count, as on the deployed gateway."""
        self._store.set_locked(email, None)

    def lock(self, email: str) -> None:
        self._store.set_locked(email, self._now(), LOCK_REASON)

    def attempts(self, email: str, kind: str | None = None, *, failed: bool = False) -> int:
        """MFA attempts by `email` in the last 5 minutes (of `kind`, or only failures)."""
        sql = "SELECT COUNT(*) FROM mfa_attempts WHERE email = ? AND at > ?"
        params: list[object] = [email, self._now() - ATTEMPT_WINDOW]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        if failed:
            sql += " AND success = 0"
        row = self._store.row(sql, params)
        return int(row[0]) if row is not None else 0

    def _log(self, email: str, kind: str, success: bool, reason: str) -> None:
        self._store.execute(
            "INSERT INTO mfa_attempts VALUES (?, ?, ?, ?, ?)", (email, kind, int(success), reason, self._now())
        )

    def _begin(self, email: str, kind: str) -> None:
        """Refuse an attempt by a locked user, or over the attempt limit (that refusal is logged)."""
        if self.locked(email):
            raise MfaError("account_locked", detail=GO_LOCKED)
        if self.attempts(email, kind) >= ATTEMPT_LIMIT:
            self._log(email, kind, False, "rate_limited")
            raise MfaError("too_many_attempts", detail=GO_TOO_MANY)

    def _fail(self, email: str, kind: str, reason: str, detail: str = GO_FAILED) -> MfaError:
        """Log a failure; the one that makes 5 in 5 minutes locks the user."""
        self._log(email, kind, False, reason)
        if self.attempts(email, failed=True) >= FAILURE_LIMIT:
            self.lock(email)
            return MfaError("account_locked", detail=GO_LOCKED_NOW)
        return MfaError("invalid_code", detail=detail)

    # codes
    def verify_code(self, email: str, code: str | None) -> None:
        """Accept a TOTP or backup code once, or raise MfaError."""
        if not code or not code.strip():
            raise MfaError("code_required", detail="code required")
        with self._lock:
            self._begin(email, "totp")
            code = code.strip().replace(" ", "")
            used = self._use_totp(email, code) if _TOTP_RE.match(code) else None
            if used is False:
                raise self._fail(email, "totp", "replay_detected")
            if used is None and not self._use_backup(email, code):
                raise self._fail(email, "totp", "invalid_code")
            self._log(email, "totp", True, "" if used else "backup_code")

    def _use_totp(self, email: str, code: str) -> bool | None:
        """True: accepted; False: its time step was used already; None: no TOTP method has this code."""
        now = self._now()
        step = int(now // TOTP_STEP)
        for method in self._store.mfa_methods(email):
            if method.type != "totp" or not method.secret:
                continue
            totp = pyotp.TOTP(method.secret)
            for counter in (step - 1, step, step + 1):
                if hmac.compare_digest(totp.generate_otp(counter), code):
                    cur = self._store.execute(
                        "INSERT OR IGNORE INTO used_totp_steps (email, step, at) VALUES (?, ?, ?)",
                        (email, counter, now),
                    )
                    if cur.rowcount != 1:
                        return False  # each time step is accepted once per user
                    self._store.execute("UPDATE mfa_methods SET last_used_at = ? WHERE id = ?", (now, method.id))
                    return True
        return None

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
                email,
                kind,
                challenge,
                parts.hostname or "localhost",
                f"{parts.scheme}://{parts.netloc}",
                now + CHALLENGE_TTL,
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
            for m in self._store.mfa_methods(email)
            if m.type == "webauthn" and m.credential_id
        ]
        options = generate_registration_options(
            rp_id=rp_id,
            rp_name="Rack Gateway",
            user_name=email,
            user_display_name=display_name,
            user_id=hashlib.sha256(email.encode()).digest()[:16],
            exclude_credentials=existing,
        )
        session_data = self._new_challenge(email, "register", options.challenge, base_url)
        return {"options": {"publicKey": json.loads(options_to_json(options))}, "session_data": session_data}

    def registration_finish(self, email: str, session_data: Any, response: Any, label: str) -> int:
        if not isinstance(response, dict | str) or not response:
            raise MfaError("session_incomplete")
        challenge = self._take_challenge(session_data, email, "register")
        try:
            verified = verify_registration_response(
                credential=response,
                expected_challenge=challenge.challenge,
                expected_rp_id=challenge.rp_id,
                expected_origin=challenge.origin,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise MfaError("invalid_registration", message=str(exc)) from exc
        return self._store.add_mfa_method(
            email,
            "webauthn",
            label or "Security key",
            self._now(),
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
        )

    def assertion_start(self, email: str, base_url: str) -> dict[str, Any]:
        creds = [m for m in self._store.mfa_methods(email) if m.type == "webauthn" and m.credential_id]
        if not creds:
            raise MfaError("webauthn_not_enrolled")
        options = generate_authentication_options(
            rp_id=urlsplit(base_url).hostname or "localhost",
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(m.credential_id or "")) for m in creds
            ],
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
            self._begin(email, "webauthn")
            try:
                challenge = self._take_challenge(session_data, email, "assert")
            except MfaError:
                self._log(email, "webauthn", False, "invalid_challenge")
                raise
            raw_id = _b64_key(str(response.get("rawId") or response.get("id") or ""))
            method = next(
                (
                    m
                    for m in self._store.mfa_methods(email)
                    if m.type == "webauthn" and _b64_key(m.credential_id or "") == raw_id
                ),
                None,
            )
            if method is None or method.public_key is None:
                raise self._fail(email, "webauthn", "credential_not_found", "credential not found")
            try:
                verified = verify_authentication_response(
                    credential=response,
                    expected_challenge=challenge.challenge,
                    expected_rp_id=challenge.rp_id,
                    expected_origin=challenge.origin,
                    credential_public_key=base64url_to_bytes(method.public_key),
                    credential_current_sign_count=method.sign_count,
                )
            except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
                raise self._fail(email, "webauthn", "validation_failed", GO_ASSERTION_FAILED) from exc
            self._store.execute(
                "UPDATE mfa_methods SET sign_count = ?, last_used_at = ? WHERE id = ?",
                (verified.new_sign_count, self._now(), method.id),
            )
            self._log(email, "webauthn", True, "")
