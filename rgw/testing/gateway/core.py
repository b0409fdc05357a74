"""`Gateway`: the reference gateway's state and the synchronous API tests drive it with.

Every public method is thread-safe and synchronous, so a test thread, a benchmark or the server's own
event loop may call it.  Login-state changes wake held long polls through per-state asyncio events,
set with `loop.call_soon_threadsafe` on the loop that is waiting; the Starlette routes in `app.py`
are a thin layer over this object and its collaborators (store, MFA, sessions, login flow, rack).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import weakref
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import rbac
from .login import LoginFlow
from .mfa import MfaService
from .rack import FakeRack
from .ratelimit import RateLimiter
from .sessions import AuthError, Principal, SessionManager
from .settings import GatewaySettings
from .store import ApiTokenRow, SessionRow, Store, User

if TYPE_CHECKING:
    from .oidc import OidcClient

SEED_USERS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("admin@example.com", "Admin User", ("admin",), False),
    ("deployer@example.com", "Deployer User", ("deployer",), False),
    ("ops@example.com", "Ops User", ("ops",), False),
    ("viewer@example.com", "Viewer User", ("viewer",), False),
    ("developer@example.com", "Developer", ("deployer",), False),
    ("mfa@example.com", "MFA User", ("deployer",), True),
)


class StateWatchers:
    """Per-login-state asyncio events that any thread can set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self.closing = False

    def watch(self, state: str) -> asyncio.Event:
        """Register an event for `state` on the running loop (call before reading the state)."""
        event = asyncio.Event()
        with self._lock:
            self._waiters.setdefault(state, set()).add((asyncio.get_running_loop(), event))
        return event

    def unwatch(self, state: str, event: asyncio.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(state, set())
            waiters.difference_update({w for w in waiters if w[1] is event})
            if not waiters:
                self._waiters.pop(state, None)

    def waiting(self, state: str) -> int:
        """How many requests are holding `/complete` for `state` right now."""
        with self._lock:
            return len(self._waiters.get(state, ()))

    def notify(self, state: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(state, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting any more
                loop.call_soon_threadsafe(event.set)

    def notify_all(self) -> None:
        self.closing = True
        with self._lock:
            states = list(self._waiters)
        for state in states:
            self.notify(state)


#: Every reference gateway of this process, for tests that check no token it issued was printed.
_GATEWAYS: weakref.WeakSet[Gateway] = weakref.WeakSet()


def live_gateways() -> list[Gateway]:
    """The reference gateways this process has made and still holds."""
    return list(_GATEWAYS)


def _oidc_client(settings: GatewaySettings) -> OidcClient | None:
    if not settings.oidc_issuer:
        return None
    from .oidc import OidcClient  # Authlib and joserfc, only for a gateway that uses a provider

    return OidcClient(
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_client_secret,
        secret=settings.secret,
        scopes=settings.oidc_scopes,
        timeout=settings.oidc_timeout,
        clock=settings.clock,
    )


class Gateway:
    """One reference gateway: users, logins, sessions, tokens, MFA and a fake rack."""

    def __init__(self, settings: GatewaySettings | None = None) -> None:
        self.settings = settings if settings is not None else GatewaySettings()
        self.store = Store(self.settings.db_path)
        self.mfa = MfaService(self.store, self.settings)
        self.sessions = SessionManager(self.store, self.settings)
        self.watchers = StateWatchers()
        self.login = LoginFlow(self.store, self.settings, self.mfa, self.sessions, self.watchers.notify)
        self.rack = FakeRack(self.settings.rack_name)
        #: The OpenID Connect provider users sign in with, or None for the built-in sign-in page.
        self.oidc: OidcClient | None = _oidc_client(self.settings)
        limit = self.settings.rate_limit_value()
        self.rate_limiter = None if limit is None else RateLimiter(limit[0], limit[1], self.settings.clock)
        self._counts: Counter[str] = Counter()
        self._refused: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()
        if self.settings.seed:
            self._seed()
        _GATEWAYS.add(self)

    def _seed(self) -> None:
        for email, name, roles, mfa_required in SEED_USERS:
            if self.store.user(email) is None:
                self.add_user(email, name, roles, mfa_required=mfa_required)
        if self.totp_secret("mfa@example.com") is None:
            self.enroll_totp("mfa@example.com")

    def close(self) -> None:
        self.watchers.notify_all()

    # users and MFA
    def add_user(
        self, email: str, name: str | None = None, roles: Sequence[str] = ("viewer",), mfa_required: bool = False
    ) -> None:
        email = email.strip().lower()
        for role in roles:
            if role not in rbac.ROLE_PERMISSIONS:
                raise ValueError(f"unknown role: {role}")
        self.store.put_user(User(email, name or email.split("@")[0], list(roles), mfa_required), self.settings.clock())

    def user(self, email: str) -> User | None:
        return self.store.user(email)

    def users(self) -> list[dict[str, Any]]:
        """Every user as `{"email","name","roles","mfa_required","totp_secret"}` (for banners and demos)."""
        return [
            {
                "email": u.email,
                "name": u.name,
                "roles": list(u.roles),
                "mfa_required": u.mfa_required,
                "totp_secret": self.mfa.totp_secret(u.email),
            }
            for u in self.store.users()
        ]

    def enroll_totp(self, email: str) -> str:
        return self.mfa.enroll_totp(self._known(email))

    def unused_totp_code(self, email: str) -> str:
        """A TOTP code of ``email`` that this gateway accepts now (a time step it has not taken yet):
        for tests that type several codes within a minute."""
        return self.mfa.unused_totp_code(self._known(email))

    def totp_secret(self, email: str) -> str | None:
        return self.mfa.totp_secret(email.strip().lower())

    def generate_backup_codes(self, email: str, count: int = 10) -> list[str]:
        return self.mfa.generate_backup_codes(self._known(email), count)

    def set_mfa_required(self, email: str, required: bool) -> None:
        user = self.store.user(self._known(email))
        assert user is not None
        self.store.put_user(User(user.email, user.name, user.roles, required), self.settings.clock())
        self.sessions.revoke_user(user.email, "mfa_changed")

    def lock_user(self, email: str) -> None:
        """Lock a user as too many failed MFA attempts do: its sessions then fail with `user locked`."""
        self.mfa.lock(self._known(email))

    def unlock_user(self, email: str) -> None:
        """What an administrator's unlock does (sessions revoked by the lock stay revoked)."""
        self.mfa.unlock(self._known(email))

    def user_locked(self, email: str) -> bool:
        return self.mfa.locked(email.strip().lower())

    def _known(self, email: str) -> str:
        email = email.strip().lower()
        if self.store.user(email) is None:
            raise KeyError(f"unknown user: {email}")
        return email

    # sessions and tokens
    def revoke_session(self, session_id: int) -> None:
        self.sessions.revoke(session_id, "revoked")

    def revoke_user_sessions(self, email: str) -> None:
        self.sessions.revoke_user(email, "revoked")

    def rotate_secret(self, new_secret: str) -> None:
        self.sessions.rotate_secret(new_secret)

    def create_api_token(
        self,
        name: str,
        *,
        role: str | None = None,
        permissions: Sequence[str] | None = None,
        user_email: str = "admin@example.com",
    ) -> str:
        token, _ = self.sessions.create_token(
            name,
            role=role,
            permissions=list(permissions) if permissions is not None else None,
            user_email=user_email,
            created_by=user_email,
        )
        return token

    def issued(self, token: str) -> bool:
        """Whether this gateway issued ``token`` (a session, even a revoked one or one under an old
        secret, or an API token it still has); False once its store is closed."""
        try:
            return self.sessions.issued(token)
        except sqlite3.ProgrammingError:
            return False

    def session_valid(self, token: str) -> bool:
        try:
            return isinstance(self.sessions.authenticate(token), SessionRow)
        except AuthError:
            return False

    def principal(self, token: str) -> Principal:
        """Authenticate `token` (sliding a session forward) or raise AuthError."""
        found = self.sessions.authenticate(token)
        if isinstance(found, ApiTokenRow):
            return Principal(
                found.user_email, found.name, [found.role or "api-token"], frozenset(found.permissions), token=found
            )
        user = self.store.user(found.email)
        if user is None:
            raise AuthError("session not found", "Session not found. Please log in again.")
        return Principal(
            user.email,
            user.name,
            user.roles,
            frozenset(rbac.permissions_for_roles(user.roles)),
            session=found,
            mfa_required=user.mfa_required,
        )

    # logins
    def complete_browser_login(self, state: str, email: str) -> None:
        self.login.sign_in(state, email)

    def fail_browser_login(self, state: str, error: str) -> None:
        self.login.fail(state, error)

    def login_completed_at(self, state: str) -> float | None:
        return self.login.completed_at(state)

    # request counts
    def count_request(self, path: str) -> None:
        with self._counts_lock:
            self._counts[path] += 1

    def count_refused(self, path: str, method: str = "GET") -> None:
        with self._counts_lock:
            self._refused[(method.upper(), path)] += 1

    def request_count(self, path_prefix: str = "/api/v1/auth/cli/") -> int:
        """Requests received on paths starting with `path_prefix` (refused ones included)."""
        with self._counts_lock:
            return sum(n for path, n in self._counts.items() if path.startswith(path_prefix))

    def rate_limited_count(self, path_prefix: str = "/", method: str | None = None) -> int:
        """Requests on paths starting with `path_prefix` (and of `method`) refused with 429 by the rate limit.

        E.g. `"/api/v1/auth/cli/callback"`: browser callbacks refused; `"/api/v1/auth/cli/"`: every
        refusal on the login routes.
        """
        with self._counts_lock:
            return sum(
                n
                for (verb, path), n in self._refused.items()
                if path.startswith(path_prefix) and (method is None or verb == method.upper())
            )

    def browser_refusals(self) -> int:
        """Requests of the user's browser the rate limit refused: the OAuth callback, and the deployed
        server's sign-in step it redirects to (``GET /auth/cli/mfa``). Any of them loses that login."""
        return self.rate_limited_count("/api/v1/auth/cli/callback") + self.rate_limited_count(
            "/api/v1/auth/cli/mfa", method="GET"
        )

    def reset_counts(self) -> None:
        with self._counts_lock:
            self._counts.clear()
            self._refused.clear()
