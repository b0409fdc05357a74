"""GatewayClient: the only code that speaks HTTP to a gateway.

One ``httpx.AsyncClient`` per client, explicit timeouts, TLS verified (one TLS context per process,
none at all for a plain-HTTP loopback gateway), no cookie jar, no automatic redirects (a
same-origin redirect of a GET is followed by hand; the token never goes to another origin).  Under
it, ``BoundedTransport`` bounds every round trip in time and size; over it, ``StepUpAuth`` sends the
bearer token and meets step-up MFA answers.  Requests to routes a deployed gateway rate-limits take
a slot of the shared ``RequestBudget`` first; a ``RetryPolicy`` (commands) retries what is safe to
retry within the command's deadline (``rgw.deadline``: the enclosing cancel scope; a command's client
opens it, ``timeout``, when nothing above did).  Every failure leaves it as an ``RgwError`` (see
``answers``).
"""

from __future__ import annotations

import functools
import platform
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar, CookiePolicy
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from rgw import __version__
from rgw.client.answers import (
    check_response,
    error_text,
    is_rate_limit,
    login_refused,
    parse_json,
    remember_sent,
    retry_after_of,
    unreachable,
)
from rgw.client.budget import RequestBudget, slots_for
from rgw.client.stepup import StepUpAuth, StepUpProvider
from rgw.client.transport import BoundedTransport
from rgw.deadline import Deadline, in_force, within
from rgw.errors import GatewayError, LoginError, MfaRejected, NotFound, UsageError
from rgw.models import DeviceInfo, LoginPending, LoginStart, Session, time_text
from rgw.retry import TRANSIENT_STATUSES, RetryAttempt, RetryPolicy, is_transient, unprocessed
from rgw.text import is_token
from rgw.urls import browser_url, check_link, normalize_url, origin

USER_AGENT = f"rack-gateway/{__version__} (python)"
MAX_LONG_POLL = 25.0
#: After a 429 every process on the machine stops sending to that gateway for this long.
RATE_LIMIT_PAUSE = 1.0


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 30.0
    write: float = 10.0
    pool: float = 10.0
    #: The longest one round trip may take in all, however slowly the answer drips in.
    total: float = 60.0

    def httpx(self, *, extra_read: float = 0.0) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read + extra_read, write=self.write, pool=self.pool)


class _RejectAllCookies(CookiePolicy):
    """A cookie jar policy that stores and sends nothing."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = False

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


def _no_cookies() -> CookieJar:
    # A session_token cookie makes rack-proxy answer 401, and we never want one stored anyway.
    return CookieJar(policy=_RejectAllCookies())


BAD_URL_HINT = "Example: https://gateway.example.com"


def _redirect_target(response: httpx.Response) -> str:
    """The absolute URL a redirect points at; a ``Location`` that is not a URL is a ``GatewayError``."""
    try:
        target = urljoin(str(response.url), response.headers["location"])
        origin(target)  # urlsplit's port raises ValueError for one out of range
        httpx.URL(target)
    except (ValueError, httpx.InvalidURL):
        raise GatewayError(
            "gateway redirected to an invalid URL", status=response.status_code, hint=GatewayError.default_hint
        ) from None
    return target


def _expect(data: Any, kind: type, what: str) -> Any:
    if not isinstance(data, kind):
        raise GatewayError(f"gateway sent an unexpected {what} response")
    return data


def _text(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise GatewayError(f"gateway's {what} response has no {key!r}")
    return value


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs ~25 ms, so a multi-rack
    login must not pay it once per gateway."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def default_device_os() -> str:
    return f"{platform.system().lower() or 'unknown'}/{platform.machine().lower() or 'unknown'}"


#: Builds the step-up provider of a client (it needs the client, for the MFA status and challenges).
StepUpFactory = Callable[["GatewayClient"], StepUpProvider]


class GatewayClient:
    """Talks to one gateway.  Use as ``async with GatewayClient(url, token=...) as client``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | None = None,
        step_up: StepUpFactory | None = None,
        budget: RequestBudget | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
        on_retry: Callable[[RetryAttempt], None] | None = None,
        insecure_http: bool = False,
    ) -> None:
        self.base_url = normalize_url(base_url)
        if token is not None and not is_token(token):
            raise UsageError(
                "the token has spaces, line breaks or non-ASCII characters in it and cannot be sent",
                hint="Check the token (a file saved with CRLF line endings?); it is not shown here.",
            )
        #: The user's opt-in to plain HTTP to this (non-loopback) gateway; without it, refused here too.
        self.insecure_http = insecure_http
        check_link(self.base_url, insecure_http=insecure_http)
        self.token = token
        self.timeouts = timeouts or Timeouts()
        #: The shared request budget of this gateway (None: requests are not paced).
        self.budget = budget
        #: Retries of every request (None: one try; the login orchestrator retries by itself).
        self.policy = policy
        #: A command's ``--timeout``: entering the client starts the command's deadline (``rgw.deadline``)
        #: unless one is in force already (a login's, ``status``'s per rack).
        self.timeout = timeout
        self._deadline: Deadline | None = None
        self.on_retry = on_retry
        #: The last ``X-Session-Expires-At`` the gateway sent (sliding session expiry).
        self.session_expires_at: str | None = None
        self.step_up = step_up(self) if step_up is not None else None
        self._auth = StepUpAuth(token, self.step_up, budget=budget)
        if transport is None:
            tls = verify or default_ssl_context() if self.base_url.startswith("https:") else False
            transport = httpx.AsyncHTTPTransport(verify=tls)
        try:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self.timeouts.httpx(),
                transport=BoundedTransport(transport, total=self.timeouts.total),
                follow_redirects=False,
                cookies=_no_cookies(),
                event_hooks={"request": [remember_sent]},  # what each request carries is a secret of the run
                headers={"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "identity"},
                trust_env=False,
            )
            self._http.base_url.host  # noqa: B018 - decodes the IDNA name: raises for a malformed one
        except (httpx.InvalidURL, UnicodeError) as exc:  # what urlsplit lets through and httpx does not
            raise UsageError(f"not a gateway URL: {self.base_url!r} ({exc})", hint=BAD_URL_HINT) from None

    async def __aenter__(self) -> GatewayClient:
        if self.timeout is not None and not in_force():
            self._deadline = within(self.timeout)
            self._deadline.__enter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        deadline, self._deadline = self._deadline, None
        try:
            if deadline is not None and deadline.__exit__(exc_type, exc, tb) and deadline.scope.cancelled_caught:
                # The deadline passed while a request was on its way (or a budget slot awaited).
                raise unreachable(self.base_url, TimeoutError("no answer within the command's --timeout"))
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        extra_read: float = 0.0,
        idempotent: bool | None = None,
        priority: bool = False,
        follow: bool = True,
    ) -> httpx.Response:
        """One request, retried by the client's policy within the deadline; errors translated.

        A request that is safe to repeat (GET, or ``idempotent=True``) is retried on any transient
        failure; any other one only when it provably was not processed (``rgw.retry.unprocessed``:
        the connection failed before a byte was sent, or the gateway answered 429 or 503).  A
        request on a route the deployed gateway rate-limits first takes a slot of the shared budget
        (``priority`` when a person is waiting on it).
        """
        repeatable = (method.upper() in ("GET", "HEAD")) if idempotent is None else idempotent
        if headers and any(k.lower().startswith("x-mfa") for k in headers):
            repeatable = False  # a code is accepted once: resending it would count as a failure
        args = (method, path, json_body, auth, headers, extra_read, priority, repeatable, follow)
        if self.policy is None:
            return await self._send_once(*args)
        retry_if = is_transient if repeatable else unprocessed
        return await self.policy.call(self._send_once, *args, on_retry=self.on_retry, retry_if=retry_if)

    async def _send_once(
        self,
        method: str,
        path: str,
        json_body: Any,
        auth: bool,
        headers: Mapping[str, str] | None,
        extra_read: float,
        priority: bool,
        repeatable: bool,
        follow: bool = True,
    ) -> httpx.Response:
        """One try (a same-origin redirect of a GET followed by hand).

        With a retry policy, a transient status becomes an error here so that the policy sees it.
        """
        url = path
        for _ in range(4):
            slots = slots_for(method, urlsplit(url).path or url)
            if self.budget is not None and slots:
                await self.budget.acquire(priority=priority, slots=slots)
            response = await self._exchange(method, url, json_body, dict(headers or {}), extra_read, auth)
            if is_rate_limit(response):
                if self.budget is not None:
                    await self.budget.penalize(RATE_LIMIT_PAUSE)
                raise GatewayError(
                    "rate limited by the gateway (HTTP 429)",
                    status=429,
                    retry_after=retry_after_of(response),
                    hint="Too many requests from this address reached the gateway; wait a little and retry.",
                )
            if (
                self.policy is not None
                and response.status_code in TRANSIENT_STATUSES
                and (repeatable or response.status_code == 503)
            ):
                check_response(response)  # raises the GatewayError the policy retries
            if exp := time_text(response.headers.get("x-session-expires-at")):  # out of range: unknown
                self.session_expires_at = exp
            if follow and response.is_redirect and method == "GET" and "location" in response.headers:
                target = _redirect_target(response)
                if origin(target) != origin(self.base_url):
                    raise GatewayError(
                        f"gateway redirected to another origin ({urlsplit(target).netloc}); "
                        "not following it with your credentials",
                        status=response.status_code,
                    )
                url = target
                continue
            return response
        raise GatewayError("gateway redirected too many times")

    async def _exchange(
        self, method: str, url: str, json_body: Any, headers: dict[str, str], extra_read: float, auth: bool
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                url,
                json=json_body,
                headers=headers,
                timeout=self.timeouts.httpx(extra_read=extra_read),
                auth=self._auth if auth else None,
            )
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        except httpx.InvalidURL as exc:
            raise UsageError(f"invalid gateway URL {self.base_url}: {exc}", hint=BAD_URL_HINT) from exc

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """An authenticated request (step-up MFA met by the auth flow); error statuses raised."""
        return check_response(await self.send(method, path, json_body=json_body, headers=headers))

    async def get_json(self, path: str) -> Any:
        return parse_json(await self.request("GET", path))

    # -- login ---------------------------------------------------------------------------------

    async def start_login(self, *, loopback_uri: str | None = None, device_name: str | None = None) -> LoginStart:
        """``/auth/cli/start``; ``loopback_uri`` and ``device_name`` [ext] are ignored by a deployed gateway
        (the reference gateway names the device on its browser pages)."""
        body: dict[str, str] = {}
        if loopback_uri:
            body["loopback_uri"] = loopback_uri
        if device_name:
            body["device_name"] = device_name[:150]
        response = await self.send("POST", "/api/v1/auth/cli/start", json_body=body, auth=False, idempotent=True)
        if response.status_code >= 400:
            error, message = error_text(response)
            if response.status_code in (400, 401, 403, 404) and (error or message):
                raise LoginError(f"gateway refused to start a login: {message or error}")
        check_response(response)
        data = _expect(parse_json(response), dict, "login start")
        auth_url = _text(data, "auth_url", "login start")
        try:
            browser_url(auth_url, gateway=self.base_url, insecure_http=self.insecure_http)
        except ValueError as exc:
            raise GatewayError(
                f"the gateway's sign-in URL was refused: {exc} (it is not opened and not shown)",
                hint="Only an absolute https:// URL goes to the browser; check that this is a rack gateway.",
            ) from None
        state = _text(data, "state", "login start")
        verifier = _text(data, "code_verifier", "login start")
        if not is_token(state) or not is_token(verifier):
            raise GatewayError("the gateway's login state is not printable ASCII without spaces")
        return LoginStart(auth_url=auth_url, state=state, code_verifier=verifier, loopback=data.get("loopback") is True)

    async def complete_login(
        self, start: LoginStart, device: DeviceInfo, *, wait: float | None = None, seen_stage: str | None = None
    ) -> LoginPending | Session:
        """One poll of ``/auth/cli/complete``: pending, a session, or an error.

        Terminal refusals (400/401 with a login error) raise ``LoginError``; anything transient
        (no answer, 429, 5xx) raises ``GatewayUnreachable``/``GatewayError`` for the retry policy.
        """
        body: dict[str, Any] = {
            "state": start.state,
            "code_verifier": start.code_verifier,
            "device_id": device.device_id,
            "device_name": device.device_name[:150],
            "device_os": device.device_os,
            "client_version": device.client_version,
        }
        extra_read = 0.0
        if wait:
            body["wait"] = min(wait, MAX_LONG_POLL)
            # Hold only while the login is still where we last saw it (a fresh one: the browser);
            # a login that moved on before this poll arrived is answered at once.
            body["stage"] = seen_stage or "browser"
            extra_read = body["wait"]
        response = await self.send(
            "POST", "/api/v1/auth/cli/complete", json_body=body, auth=False, extra_read=extra_read, idempotent=True
        )
        status = response.status_code
        if status == 202:
            data = parse_json(response)
            data = data if isinstance(data, dict) else {}
            methods = data.get("mfa_methods")
            stage = data.get("stage")
            return LoginPending(
                stage=stage if isinstance(stage, str) else None,
                mfa_methods=tuple(m for m in methods if isinstance(m, str)) if isinstance(methods, list) else (),
            )
        if status == 200:
            return _session_from(_expect(parse_json(response), dict, "login"))
        if status in (400, 401, 403):
            error, message = error_text(response)
            raise login_refused(message or error)
        check_response(response)
        raise GatewayError(f"gateway answered the login poll with HTTP {status}", status=status)

    async def submit_login_mfa(self, state: str, method: str, **fields: Any) -> None:
        """``POST /auth/cli/mfa``: raises ``LoginError`` carrying the gateway's error code."""
        body = {"state": state, "method": method, **{k: v for k, v in fields.items() if v is not None}}
        response = await self.send("POST", "/api/v1/auth/cli/mfa", json_body=body, auth=False, priority=True)
        if response.status_code in (400, 401, 429):
            error, message = error_text(response)
            raise MfaRejected(error or "invalid_code", message, retry_after=retry_after_of(response))
        check_response(response)

    async def login_webauthn_options(self, state: str) -> dict[str, Any]:
        response = await self.send(
            "POST",
            "/api/v1/auth/cli/mfa/webauthn/start",
            json_body={"state": state},
            auth=False,
            idempotent=True,
            priority=True,
        )
        check_response(response)
        return dict(_expect(parse_json(response), dict, "WebAuthn options"))

    # -- session commands --------------------------------------------------------------------

    async def logout(self) -> None:
        """Revoke this session server-side (the gateway answers 302; we do not follow it)."""
        response = await self.send("GET", "/api/v1/auth/web/logout", headers=None, follow=False)
        if response.is_redirect or response.status_code < 300:
            return
        check_response(response)

    async def revoke(self, token: str) -> None:
        """Revoke another session of ours on this gateway (a re-login's predecessor)."""
        response = await self.send(
            "GET", "/api/v1/auth/web/logout", auth=False, headers={"Authorization": f"Bearer {token}"}, follow=False
        )
        if response.is_redirect or response.status_code < 300:
            return
        check_response(response)

    async def info(self) -> dict[str, Any]:
        return dict(_expect(await self.get_json("/api/v1/info"), dict, "info"))

    async def rack_system(self) -> dict[str, Any]:
        return dict(_expect(await self.get_json("/api/v1/rack-proxy/system"), dict, "rack system"))

    async def apps(self) -> list[dict[str, Any]]:
        data = _expect(await self.get_json("/api/v1/rack-proxy/apps"), list, "apps")
        return [app for app in data if isinstance(app, dict)]

    async def step_up_challenge(self) -> dict[str, Any]:
        """A WebAuthn challenge for step-up MFA: ``{"options": {"publicKey": ...}, "session_data"}``."""
        response = await self.send("POST", "/api/v1/auth/mfa/webauthn/assertion/start", priority=True)
        return dict(_expect(parse_json(check_response(response)), dict, "WebAuthn options"))

    async def mfa_status(self) -> dict[str, Any]:
        return dict(_expect(await self.get_json("/api/v1/auth/mfa/status"), dict, "MFA status"))

    # -- API tokens -----------------------------------------------------------------------------

    async def list_api_tokens(self) -> list[dict[str, Any]]:
        """Every API token; the deployed gateway answers ``null`` when there are none."""
        data = await self.get_json("/api/v1/api-tokens")
        if data is None:
            return []
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            data = data["tokens"]
        return [t for t in _expect(data, list, "API token list") if isinstance(t, dict)]

    async def get_api_token(self, public_id: str) -> dict[str, Any]:
        """One token; ``200 null`` (an unknown UUID) and ``404`` (not a UUID) are ``NotFound``."""
        try:
            data = await self.get_json(f"/api/v1/api-tokens/{_segment(public_id)}")
        except GatewayError as exc:
            if exc.status != 404:
                raise
            data = None
        if data is None:
            raise NotFound(f"no API token {public_id!r} on this gateway")
        return dict(_expect(data, dict, "API token"))

    async def api_token_permissions(self) -> dict[str, Any]:
        return dict(_expect(await self.get_json("/api/v1/api-tokens/permissions"), dict, "permissions"))

    async def create_api_token(self, body: Mapping[str, Any]) -> dict[str, Any]:
        response = await self.request("POST", "/api/v1/api-tokens", json_body=dict(body))
        return dict(_expect(parse_json(response), dict, "API token"))

    # -- admin (the reference gateway's admin routes) --------------------------------------------

    async def revoke_sessions(self, *, email: str | None = None, session_id: int | None = None) -> int:
        """Revoke one session or every session of a user; returns how many were revoked."""
        body: dict[str, Any] = {"session_id": session_id} if session_id is not None else {"email": email}
        data = _expect(
            parse_json(await self.request("POST", "/api/v1/admin/sessions/revoke", json_body=body)), dict, "revoke"
        )
        revoked = data.get("revoked")
        return int(revoked) if isinstance(revoked, int | bool) else 0

    async def set_mfa_required(self, email: str, required: bool) -> None:
        await self.request("POST", "/api/v1/admin/users/mfa", json_body={"email": email, "required": required})

    async def delete_api_token(self, public_id: str) -> None:
        """Delete one token; an unknown id is ``NotFound`` (the deployed gateway: 404, or 500 for a non-UUID)."""
        if not _is_uuid(public_id):
            raise NotFound(f"no API token {public_id!r}: API token ids are UUIDs")
        try:
            await self.request("DELETE", f"/api/v1/api-tokens/{_segment(public_id)}")
        except GatewayError as exc:
            if exc.status == 404:
                raise NotFound(f"no API token {public_id!r} on this gateway") from None
            raise


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _session_from(data: Mapping[str, Any]) -> Session:
    session_id = data.get("session_id")

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    token = _text(data, "token", "login")
    if not is_token(token):
        raise GatewayError(
            "the gateway issued a session token that is not printable ASCII without spaces; nothing was stored",
            hint="The gateway is misbehaving (or is not a rack gateway); report it to its administrator.",
        )
    return Session(
        token=token,
        email=_text(data, "email", "login"),
        name=text("name"),
        expires_at=time_text(data.get("expires_at")),  # out of range: unknown, never stored
        session_id=session_id if isinstance(session_id, int) and not isinstance(session_id, bool) else None,
        channel=text("channel") or "cli",
        device_id=text("device_id"),
        device_name=text("device_name"),
        mfa_verified=data.get("mfa_verified") is True,
        mfa_required=data.get("mfa_required") is True,
        enrollment_required=data.get("enrollment_required") is True,
    )
