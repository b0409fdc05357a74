"""Sessions and API tokens of the reference gateway: issue, authenticate, slide, revoke.

Session tokens (`rgw_sess_…`) are stored as HMAC(secret, token), so rotating the secret silently
invalidates every session; the old secrets are kept only to tell the user *why* a session is gone.
API tokens (`rgw_token_…`) are stored as SHA-256 and survive rotation.  Every failure is an
`AuthError` whose `reason` is the wire reason (`session expired`, `session revoked`, ...).  As on the
deployed gateway, a session of a locked user fails with `user locked` and is revoked by that, so it
answers `session revoked` from then on, even after an unlock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass

from . import rbac
from .settings import GatewaySettings
from .store import ApiTokenRow, SessionRow, Store, User

REVOKE_MESSAGES = {
    "revoked": "Your session was revoked by an administrator. Please log in again.",
    "mfa_changed": "Your session was revoked because MFA enforcement changed for your account. "
    "Please log in again (you may need to set up multi-factor authentication).",
    "logged_out": "This session was logged out. Please log in again.",
    "locked": "Your session was revoked when your account was locked after too many failed MFA attempts. "
    "Ask an administrator to unlock it, then log in again.",
}
LOCKED_MESSAGE = (
    "Your account is locked after too many failed MFA attempts. Ask an administrator to unlock it, then log in again."
)
NOT_FOUND_MESSAGE = "Session not found. Please log in again."
SECRET_MESSAGE = (
    "Session not found: the gateway's session secret changed, which invalidated every session. Please log in again."
)


class AuthError(Exception):
    """Bad credentials: `authentication failed: <reason>` with a human `message`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message

    @property
    def error(self) -> str:
        return f"authentication failed: {self.reason}"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user session or an API token."""

    email: str
    name: str
    roles: list[str]
    permissions: frozenset[str]
    session: SessionRow | None = None
    token: ApiTokenRow | None = None
    mfa_required: bool = False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionManager:
    """Thread-safe owner of the sessions and API tokens tables."""

    def __init__(self, store: Store, settings: GatewaySettings) -> None:
        self._store = store
        self._settings = settings
        self._secret = settings.secret
        self._old_secrets: list[str] = []
        self._lock = threading.RLock()

    def _hash(self, token: str, secret: str | None = None) -> str:
        key = (secret if secret is not None else self._secret).encode()
        return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()

    # sessions
    def issue(
        self,
        user: User,
        *,
        device_id: str | None,
        device_name: str | None,
        device_os: str | None,
        mfa_verified_at: float | None,
    ) -> tuple[str, SessionRow]:
        token = "rgw_sess_" + secrets.token_urlsafe(32)
        now = self._settings.clock()
        with self._lock:
            self._store.add_session(
                self._hash(token),
                user.email,
                now,
                now + self._settings.session_ttl,
                device_id=device_id,
                device_name=device_name,
                device_os=device_os,
                mfa_verified_at=mfa_verified_at,
            )
            row = self._store.session_by_hash(self._hash(token))
        assert row is not None
        return token, row

    def rotate_secret(self, new_secret: str) -> None:
        with self._lock:
            self._old_secrets.append(self._secret)
            self._secret = new_secret

    def revoke(self, session_id: int, reason: str = "revoked") -> int:
        cur = self._store.execute(
            "UPDATE sessions SET revoked_reason = ? WHERE id = ? AND revoked_reason IS NULL", (reason, session_id)
        )
        return cur.rowcount

    def revoke_user(self, email: str, reason: str = "revoked") -> int:
        cur = self._store.execute(
            "UPDATE sessions SET revoked_reason = ? WHERE email = ? AND revoked_reason IS NULL",
            (reason, email.lower()),
        )
        return cur.rowcount

    def record_step_up(self, session_id: int) -> float:
        now = self._settings.clock()
        self._store.execute("UPDATE sessions SET mfa_verified_at = ? WHERE id = ?", (now, session_id))
        return now + self._settings.step_up_window

    def issued(self, token: str) -> bool:
        """Whether ``token`` is a session (under any secret) or an API token of this gateway."""
        with self._lock:
            secrets_used = [self._secret, *self._old_secrets]
            if any(self._store.session_by_hash(self._hash(token, secret)) for secret in secrets_used):
                return True
            return bool(self._store.api_tokens(token_hash=token_digest(token)))

    def authenticate(self, token: str) -> SessionRow | ApiTokenRow:
        """The session (slid forward) or API token for `token`, or AuthError."""
        if not token:
            raise AuthError("session not found", NOT_FOUND_MESSAGE)
        with self._lock:
            row = self._store.session_by_hash(self._hash(token))
            if row is not None:
                return self._check_session(row)
            tokens = self._store.api_tokens(token_hash=token_digest(token))
            if tokens:
                return self._check_token(tokens[0])
            if any(self._store.session_by_hash(self._hash(token, old)) for old in self._old_secrets):
                raise AuthError("session not found", SECRET_MESSAGE)
        if token.startswith("rgw_") and not token.startswith("rgw_sess_"):
            raise AuthError(
                "invalid API token: not found or revoked",
                "This API token is not known to the gateway (it may have been deleted).",
            )
        raise AuthError("session not found", NOT_FOUND_MESSAGE)

    def _check_session(self, row: SessionRow) -> SessionRow:
        now = self._settings.clock()
        if row.revoked_reason is not None:
            raise AuthError("session revoked", REVOKE_MESSAGES.get(row.revoked_reason, REVOKE_MESSAGES["revoked"]))
        if now - row.last_used_at > self._settings.inactivity_timeout:
            days = round(self._settings.inactivity_timeout / 86400)
            raise AuthError(
                "session expired", f"Your session expired after {days} days of inactivity. Please log in again."
            )
        if now > row.expires_at:
            raise AuthError("session expired", "Your session has expired. Please log in again.")
        user = self._store.user(row.email)
        if user is not None and user.locked_at is not None:
            self.revoke(row.id, "locked")
            raise AuthError("user locked", LOCKED_MESSAGE)
        expires_at = now + self._settings.session_ttl
        self._store.execute(
            "UPDATE sessions SET last_used_at = ?, expires_at = ? WHERE id = ?", (now, expires_at, row.id)
        )
        fresh = self._store.session_by_hash(row.token_hash)
        assert fresh is not None
        return fresh

    def _check_token(self, row: ApiTokenRow) -> ApiTokenRow:
        now = self._settings.clock()
        if row.expires_at is not None and now > row.expires_at:
            raise AuthError("invalid API token: expired", "This API token has expired.")
        self._store.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, row.id))
        return row

    # API tokens
    def create_token(
        self,
        name: str,
        *,
        role: str | None,
        permissions: list[str] | None,
        user_email: str,
        created_by: str | None = None,
    ) -> tuple[str, ApiTokenRow]:
        if role is not None and role not in rbac.ROLE_PERMISSIONS:
            raise ValueError(f"unknown role: {role}")
        unknown = rbac.unknown_permissions(permissions or [])
        if unknown:
            raise ValueError(f"unknown permission: {unknown[0]}")
        perms = rbac.expand(role, permissions)
        if not perms:
            raise ValueError("permissions or role required")
        token = "rgw_token_" + secrets.token_urlsafe(32)
        public_id = str(uuid.uuid4())
        self._store.add_api_token(
            public_id,
            token_digest(token),
            name,
            perms,
            role,
            user_email.lower(),
            self._settings.clock(),
            created_by.lower() if created_by else None,
        )
        return token, self._store.api_tokens(public_id=public_id)[0]

    def tokens(self) -> list[ApiTokenRow]:
        return self._store.api_tokens()

    def token_name_taken(self, name: str) -> bool:
        return self._store.row("SELECT 1 FROM api_tokens WHERE name = ?", (name,)) is not None

    def token(self, public_id: str) -> ApiTokenRow | None:
        found = self._store.api_tokens(public_id=public_id)
        return found[0] if found else None

    def delete_token(self, public_id: str) -> bool:
        return self._store.execute("DELETE FROM api_tokens WHERE public_id = ?", (public_id,)).rowcount == 1
