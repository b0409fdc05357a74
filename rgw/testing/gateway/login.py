"""The browser login state machine of the reference gateway.

A login state moves `browser` → (`mfa`) → `verified`, or → `failed` ([ext] early failure, and the
MFA-enrolment failure the deployed gateway also reports).  `/complete` redeems a verified state once
(core) or answers the same body again for `idempotent_window` seconds ([ext]).  Every change calls
`notify(state)` so held long polls answer at once.  All transitions run under one lock.

A deployed gateway's browser makes two requests on its login routes (`handlers/auth_cli.go`): the
callback only stores the code and redirects (307) to `GET /api/v1/auth/cli/mfa?state=`, which signs
the user in.  Without extensions the reference gateway does the same (`receive_code`, then
`cli_mfa_form`); with them the callback signs in at once.

With an OpenID Connect provider (`settings.oidc_issuer`) the code comes from that provider and the
routes exchange it (`oidc.OidcClient.identify`, a network call made outside the lock) between
`awaiting_sign_in` (or `take_received_code`) and `identified` / `sign_in_failed`, which check the
state again: it may have moved on while the provider answered.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .mfa import MfaError, MfaService
from .pages import LoginContext
from .sessions import SessionManager
from .settings import GatewaySettings
from .store import LoginState, Store
from .timefmt import rfc3339

ENROLL_TEXT = "You must set up multi-factor authentication before you can continue using the CLI."
UNAUTHORIZED_TEXT = "User not authorized for this gateway."
CANCELLED_TEXT = "consent cancelled"
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "localhost")
EXCHANGE_TAKEN_NOTE = (
    "A code for this login was sent from elsewhere (normally the terminal) before this page loaded, and took"
    " over its sign-in: finish in the terminal, where <code>rack-gateway login</code> is waiting."
)


class LoginPageError(Exception):
    """A browser-facing error: rendered as an HTML error page."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class BrowserOutcome:
    """Where the browser goes next: a redirect, or a page (`done` or `error`) with a text.

    `context` is the login the page is about; `cli_told` (error pages): the CLI hears of the failure.
    """

    location: str | None = None
    page: str = "done"
    text: str = ""
    status: int = 200
    context: LoginContext | None = None
    cli_told: bool = True
    #: What the error page says after the text (None: what `cli_told` implies).
    note: str | None = None


@dataclass(frozen=True)
class CliMfaStep:
    """`LoginFlow.cli_mfa_step`'s answer: verified already, or a code this request must exchange."""

    verified: bool = False
    #: The code stored by the callback, taken from the browser: exchange it (None: no exchange to do).
    exchange_code: str | None = None
    code_verifier: str = ""
    #: Who signed in at the built-in sign-in page (the code stands for this user).
    email: str | None = None


def valid_loopback_uri(uri: Any) -> bool:
    if not isinstance(uri, str):
        return False
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    host = parts.netloc.rpartition("@")[2].rsplit(":", 1)[0] if parts.netloc else ""
    return parts.scheme == "http" and host in LOOPBACK_HOSTS and port is not None and "@" not in parts.netloc


def _with_query(uri: str, params: dict[str, str]) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return uri + sep + urlencode(params, quote_via=quote)


class LoginFlow:
    """Login states: start, browser sign-in, MFA, redemption."""

    def __init__(
        self,
        store: Store,
        settings: GatewaySettings,
        mfa: MfaService,
        sessions: SessionManager,
        notify: Callable[[str], None],
    ) -> None:
        self._store = store
        self._settings = settings
        self._mfa = mfa
        self._sessions = sessions
        self._notify = notify
        self._lock = threading.RLock()
        self._redeemed: dict[str, tuple[float, str, dict[str, Any]]] = {}
        self._completed: dict[str, float] = {}
        self._received: set[str] = set()  # states whose callback brought the code (deployed mode)
        # Deployed mode: who exchanged a login's code, "browser" (GET /auth/cli/mfa) or "cli" (POST
        # /auth/cli/mfa took it first: the browser's page then fails), "cli-failed" (that exchange failed).
        self._exchanged: dict[str, str] = {}

    @property
    def ext(self) -> bool:
        return self._settings.extensions

    def start(
        self,
        base_url: str,
        loopback_uri: str | None,
        *,
        device_name: str | None = None,
        auth_url: Callable[[str, str], str] | None = None,
    ) -> dict[str, Any]:
        """A new login state; `auth_url(state, code_verifier)` builds an identity provider's sign-in URL
        (default: the built-in sign-in page).  `device_name` [ext] is shown on the browser pages."""
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(96)
        use_loopback = self.ext and loopback_uri is not None
        device = device_name.strip()[:150] or None if self.ext and device_name else None
        self._store.put_state(
            LoginState(
                state,
                verifier,
                loopback_uri if use_loopback else None,
                "browser",
                None,
                None,
                None,
                self._settings.clock(),
                None,
                None,
                device,
            )
        )
        url = (
            auth_url(state, verifier)
            if auth_url is not None
            else f"{base_url}/oauth/authorize?state={state}&client_id=rack-gateway"
        )
        body: dict[str, Any] = {"auth_url": url, "state": state, "code_verifier": verifier}
        if use_loopback:
            body["loopback"] = True
        return body

    def completed_at(self, state: str) -> float | None:
        """The clock time `state` became verified (kept after redemption)."""
        with self._lock:
            return self._completed.get(state)

    def state(self, state: str) -> LoginState | None:
        return self._store.state(state)

    def context(self, st: LoginState) -> LoginContext:
        """What the browser pages say about the login `st`."""
        return LoginContext(self._settings.rack_name, st.device_name, st.created_at, st.email)

    def _done(self, st: LoginState) -> BrowserOutcome:
        return BrowserOutcome(text="Login complete, return to your terminal.", context=self.context(st))

    def _not_waiting(self, st: LoginState) -> BrowserOutcome:
        return BrowserOutcome(
            page="error",
            text=st.error or "This login is not waiting for sign-in.",
            status=400,
            context=self.context(st),
            cli_told=st.stage == "failed",
        )

    def _require(self, state: str) -> LoginState:
        found = self._store.state(state) if state else None
        if found is None:
            raise LoginPageError(400, "invalid or expired state")
        return found

    # browser side
    def authorize(self, state: str, email: str, action: str) -> str:
        """The sign-in form was posted: the callback URL the browser goes to next."""
        with self._lock:
            st = self._require(state)
            if action == "cancel":
                return "/api/v1/auth/cli/callback?" + urlencode({"error": "access_denied", "state": state})
            email = email.strip().lower()
            if "@" not in email:
                raise LoginPageError(400, "Enter an email address.")
            code = secrets.token_urlsafe(24)
            self._store.put_state(replace(st, code=code, email=email))
            return "/api/v1/auth/cli/callback?" + urlencode({"code": code, "state": state})

    def callback(self, state: str, code: str, error: str) -> BrowserOutcome:
        with self._lock:
            st = self._require(state)
            if st.stage != "browser":
                return self._done(st) if st.stage == "verified" else self._not_waiting(st)
            if error:
                return self._fail(st, CANCELLED_TEXT)
            if not code or st.code is None or st.email is None or not hmac.compare_digest(code, st.code):
                raise LoginPageError(400, "invalid authorization code")
            return self._signed_in(replace(st, code=None), st.email)

    def receive_code(self, state: str, code: str, *, external: bool = False) -> None:
        """The deployed callback: check and keep the code; `cli_mfa_form` signs the user in.

        `external`: the code is an identity provider's, kept for `take_received_code` to exchange.
        """
        with self._lock:
            st = self._require(state)
            if st.stage != "browser":
                return
            if external:
                self._store.put_state(replace(st, code=code))
            elif st.code is None or st.email is None or not hmac.compare_digest(code, st.code):
                raise LoginPageError(400, "invalid authorization code")
            self._received.add(state)

    def awaiting_sign_in(self, state: str) -> LoginState | BrowserOutcome:
        """The login `state` if it waits for the browser's sign-in, else the page to show instead."""
        with self._lock:
            st = self._require(state)
            return (
                st if st.stage == "browser" else (self._done(st) if st.stage == "verified" else self._not_waiting(st))
            )

    def take_received_code(self, state: str) -> tuple[LoginState, str] | BrowserOutcome:
        """`GET /auth/cli/mfa` with a provider: the kept code (once), or where the login is instead."""
        with self._lock:
            st = self._require(state)
            if self._exchanged.get(state, "browser") != "browser":
                return self._exchange_taken(st)
            if state in self._received and st.stage == "browser" and st.code:
                self._received.discard(state)
                self._store.put_state(replace(st, code=None))
                return st, st.code
            return self._where(st)

    def identified(self, state: str, email: str, hosted_domain: str | None = None) -> BrowserOutcome:
        """The identity provider vouched for `email`: the allowed-domain and user checks, then MFA or done."""
        with self._lock:
            st = self._require(state)
            if st.stage != "browser":
                return self._done(st) if st.stage == "verified" else self._not_waiting(st)
            return self._signed_in(st, email.strip().lower(), hosted_domain)

    def sign_in_failed(self, state: str, text: str) -> BrowserOutcome:
        """The identity provider's part failed (`text` says why): fail the login [ext] or show the page."""
        with self._lock:
            st = self._require(state)
            if st.stage != "browser":
                return self._done(st) if st.stage == "verified" else self._not_waiting(st)
            return self._fail(st, text)

    def cli_mfa_form(self, state: str) -> BrowserOutcome:
        """`GET /api/v1/auth/cli/mfa?state=`: sign in with a received code, or say where the login is."""
        with self._lock:
            st = self._require(state)
            if self._exchanged.get(state, "browser") != "browser":
                return self._exchange_taken(st)
            if state in self._received and st.stage == "browser" and st.email is not None:
                self._received.discard(state)
                return self._signed_in(replace(st, code=None), st.email)
            return self._where(st)

    def _exchange_taken(self, st: LoginState) -> BrowserOutcome:
        """The browser's `GET /auth/cli/mfa` after a `POST /auth/cli/mfa` exchanged the code first."""
        return BrowserOutcome(
            page="error",
            text="session_incomplete",
            status=400,
            context=self.context(st),
            cli_told=False,
            note=EXCHANGE_TAKEN_NOTE,
        )

    def _where(self, st: LoginState) -> BrowserOutcome:
        """A browser back at a login past sign-in: done, the MFA page, or an error page."""
        if st.stage == "verified":
            return self._done(st)
        if st.stage == "mfa":
            return BrowserOutcome(location="/auth/mfa?" + urlencode({"state": st.state}))
        return self._not_waiting(st)

    def sign_in(self, state: str, email: str) -> BrowserOutcome:
        """`complete_browser_login`: the user signed in as `email`."""
        with self._lock:
            st = self._require(state)
            if st.stage != "browser":
                raise ValueError(f"login state is at stage {st.stage}, not browser")
            return self._signed_in(st, email.strip().lower())

    def fail(self, state: str, error: str) -> BrowserOutcome:
        with self._lock:
            return self._fail(self._require(state), error)

    def _signed_in(self, st: LoginState, email: str, hosted_domain: str | None = None) -> BrowserOutcome:
        st = replace(st, email=email)
        if not self._settings.domain_allowed(email, hosted_domain):
            return self._fail(st, f"email domain not allowed: {email}")
        if not self.ext:
            self._exchanged.setdefault(st.state, "browser")  # who signed in is known from now on
        user = self._store.user(email)
        if user is None:
            return self._fail(st, UNAUTHORIZED_TEXT)
        if self._mfa.enrolled(email):
            self._store.put_state(replace(st, stage="mfa"))
            self._notify(st.state)
            return BrowserOutcome(location="/auth/mfa?" + urlencode({"state": st.state}))
        if user.mfa_required:
            return self._fail(st, ENROLL_TEXT, always=True)
        return self._verify(st, mfa_verified_at=None)

    def _fail(self, st: LoginState, text: str, *, always: bool = False) -> BrowserOutcome:
        if not (self.ext or always):
            # The deployed gateway only shows an error page; the CLI keeps seeing 202.
            if st.email is not None:  # who signed in is kept, as the deployed gateway keeps the profile
                self._store.put_state(st)
            return BrowserOutcome(page="error", text=text, status=403, context=self.context(st), cli_told=False)
        self._store.put_state(replace(st, stage="failed", error=text))
        self._notify(st.state)
        if st.loopback_uri:
            return BrowserOutcome(
                location=_with_query(st.loopback_uri, {"state": st.state, "result": "error", "error": text})
            )
        return BrowserOutcome(page="error", text=text, status=403, context=self.context(st))

    def _verify(self, st: LoginState, mfa_verified_at: float | None) -> BrowserOutcome:
        now = self._settings.clock()
        self._completed[st.state] = now
        self._store.put_state(replace(st, stage="verified", verified_at=now, mfa_verified_at=mfa_verified_at))
        self._notify(st.state)
        if st.loopback_uri:
            return BrowserOutcome(location=_with_query(st.loopback_uri, {"state": st.state, "result": "ok"}))
        return self._done(st)

    # MFA at login
    def mfa(self, state: str, method: Any, code: Any, session_data: Any, assertion: Any) -> BrowserOutcome:
        with self._lock:
            st = self._store.state(state) if state else None
            if st is None:
                raise MfaError("session_expired")
            if st.stage == "verified":
                return self._done(st)
            if st.stage != "mfa" or st.email is None:
                raise MfaError("session_incomplete")
            if method == "totp":
                self._mfa.verify_code(st.email, code if isinstance(code, str) else None)
            elif method == "webauthn":
                self._mfa.assertion_verify(st.email, session_data, assertion)
            else:
                raise MfaError("invalid_method")
            return self._verify(st, mfa_verified_at=self._settings.clock())

    # MFA at login, the deployed handler (`POST /auth/cli/mfa` without extensions)
    def cli_mfa_step(self, state: str) -> CliMfaStep:
        """Where the login `state` stands for a deployed `POST /auth/cli/mfa`, up to the exchange.

        Raises `session_expired` (unknown state) or `session_incomplete` (no code stored: the browser's
        sign-in has not reached the callback; nothing changes).  A code stored and not yet exchanged is
        taken from the browser here: the caller exchanges it (`cli_identified` / `cli_exchange_failed`).
        """
        with self._lock:
            st = self._store.state(state) if state else None
            if st is None:
                raise MfaError("session_expired")
            if st.stage == "verified":
                return CliMfaStep(verified=True)
            if state in self._received and st.stage == "browser":
                self._received.discard(state)
                self._exchanged[state] = "cli"
                code = st.code or ""
                if code:
                    self._store.put_state(replace(st, code=None))
                return CliMfaStep(exchange_code=code, code_verifier=st.code_verifier, email=st.email)
            if st.stage == "browser" and state not in self._exchanged:
                raise MfaError("session_incomplete")
            return CliMfaStep()

    def cli_identified(self, state: str, email: str, hosted_domain: str | None = None) -> None:
        """The exchange `cli_mfa_step` took gave `email`: the domain check, then the user may verify MFA.

        A refused domain is a failed exchange.  Unlike the browser's sign-in nothing else moves on:
        a user without MFA stays signed in but unverified (the browser's page is gone).
        """
        with self._lock:
            st = self._store.state(state)
            if st is None:
                raise MfaError("session_expired")
            email = email.strip().lower()
            if not self._settings.domain_allowed(email, hosted_domain):
                self._exchanged[state] = "cli-failed"
                raise MfaError("exchange_failed")
            if st.stage != "browser":
                return
            stage = "mfa" if self._store.user(email) is not None and self._mfa.enrolled(email) else "browser"
            self._store.put_state(replace(st, email=email, stage=stage))
            if stage == "mfa":
                self._notify(state)

    def cli_exchange_failed(self, state: str) -> None:
        """The exchange `cli_mfa_step` took failed: the code is spent, later requests fail the same way."""
        with self._lock:
            self._exchanged[state] = "cli-failed"

    def cli_mfa_verify(self, state: str, method: str, code: str, session_data: str, assertion: str) -> None:
        """After the exchange: the user check (`401 user_not_authorized`), the method, the code."""
        with self._lock:
            st = self._store.state(state)
            if st is None:
                raise MfaError("session_expired")
            if st.stage == "verified":
                return
            if self._exchanged.get(state) == "cli-failed":
                raise MfaError("exchange_failed")
            if st.email is None:
                raise MfaError("session_incomplete")  # an exchange still under way
            if self._store.user(st.email) is None:
                raise MfaError("user_not_authorized", status=401)
            if method == "totp":
                self._mfa.verify_code(st.email, code)
            elif method == "webauthn":
                self._mfa.assertion_verify(st.email, session_data, assertion)
            else:
                raise MfaError("invalid_method")
            self._verify(st, mfa_verified_at=self._settings.clock())

    def webauthn_start(self, state: str, base_url: str) -> dict[str, Any]:
        st = self._store.state(state) if state else None
        if st is None:
            raise MfaError("session_expired")
        if st.stage != "mfa" or st.email is None:
            raise MfaError("session_incomplete")
        return self._mfa.assertion_start(st.email, base_url)

    # redemption
    def complete(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            return 400, {"error": "invalid request"}
        state, verifier, device_id = body.get("state"), body.get("code_verifier"), body.get("device_id")
        optional = [body.get(k) for k in ("device_name", "device_os", "client_version")]
        if not all(isinstance(v, str) and v for v in (state, verifier, device_id)) or not all(
            v is None or isinstance(v, str) for v in optional
        ):
            return 400, {"error": "invalid request"}
        assert isinstance(state, str)
        assert isinstance(verifier, str)
        assert isinstance(device_id, str)
        try:
            uuid.UUID(device_id)
        except ValueError:
            return 500, {"error": "internal server error"}  # the deployed gateway's UUID column
        with self._lock:
            now = self._settings.clock()
            self._redeemed = {k: v for k, v in self._redeemed.items() if now - v[0] <= self._settings.idempotent_window}
            if self.ext and state in self._redeemed:
                _, known, answer = self._redeemed[state]
                if not hmac.compare_digest(known, verifier):
                    return 400, {"error": "invalid code_verifier"}
                return 200, answer
            st = self._store.state(state)
            if st is None:
                return 400, {"error": "invalid or expired state"}
            if self.ext and not hmac.compare_digest(st.code_verifier, verifier):
                return 400, {"error": "invalid code_verifier"}
            if st.stage == "failed":
                self._store.delete_state(state)
                return 400, {"error": st.error or "login failed"}
            if st.stage != "verified" or st.email is None:
                return 202, self.pending_body(st)
            return self._redeem(st, body, now)

    def pending_body(self, st: LoginState) -> dict[str, Any]:
        answer: dict[str, Any] = {"status": "pending"}
        if self.ext:
            answer["stage"] = "mfa" if st.stage == "mfa" else "browser"
            if st.stage == "mfa" and st.email:
                answer["mfa_methods"] = self._mfa.method_names(st.email)
        return answer

    def _redeem(self, st: LoginState, body: dict[str, Any], now: float) -> tuple[int, dict[str, Any]]:
        assert st.email is not None
        user = self._store.user(st.email)
        if user is None:
            self._store.delete_state(st.state)
            return 400, {"error": UNAUTHORIZED_TEXT}
        device_name = str(body.get("device_name") or "")[:150]
        token, row = self._sessions.issue(
            user,
            device_id=str(body["device_id"]),
            device_name=device_name,
            device_os=str(body.get("device_os") or ""),
            mfa_verified_at=st.mfa_verified_at,
        )
        answer: dict[str, Any] = {
            "token": token,
            "email": user.email,
            "name": user.name,
            "expires_at": rfc3339(row.expires_at),
            "session_id": row.id,
            "channel": "cli",
            "device_id": row.device_id,
            "device_name": device_name,
            "mfa_verified": st.mfa_verified_at is not None,
            "mfa_required": user.mfa_required,
            "enrollment_required": False,
        }
        self._store.delete_state(st.state)
        self._received.discard(st.state)
        self._exchanged.pop(st.state, None)
        if self.ext:
            self._redeemed[st.state] = (now, st.code_verifier, answer)
        return 200, answer
