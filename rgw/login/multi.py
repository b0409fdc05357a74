"""Logging in to one rack or many at once, coalescing with other processes doing the same.

``LoginCoordinator.login_all`` runs one ``LoginFlow`` per rack in a task group with a concurrency
limit, all sharing one loopback listener (one unguessable path, each login told apart by its state).
Every rack ends with a ``RackLoginResult``; a failure of one never cancels or undoes another, and a
session is saved the moment its own login completes.  ``login_one`` first takes the rack's
cross-process login lock (``RackLoginLock``): when another process holds it for the same gateway
URL, this one waits and then uses the session that process stored instead of opening a second
browser flow; for another URL, it waits for that login to end and then logs in itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from rgw import trace
from rgw.client import GatewayClient
from rgw.config import ConfigData, ConfigStore
from rgw.deadline import until
from rgw.errors import LoginTimeout, RgwError
from rgw.login.browser import BrowserLauncher, can_open
from rgw.login.coalesce import RackLoginLock, same_gateway
from rgw.login.events import (
    BrowserUnavailable,
    CoalescedWait,
    EventSink,
    LoggedIn,
    LoginFailed,
    LoginStarted,
    WalkAvailable,
    WalkOpening,
    WalkProgress,
    WalkQueued,
)
from rgw.login.flow import ListenerLike, LoginFlow, LoginOptions, MfaSolver, PasteSource, answered_before
from rgw.login.pending import PendingLogins
from rgw.login.walk import LoginWalk
from rgw.models import DEFAULT_PARALLEL, DeviceInfo, LoginRequest, LoginStart, RackConfig
from rgw.retry import RetryPolicy
from rgw.urls import browser_url, origin

if TYPE_CHECKING:
    from rgw.login.listener import CallbackListener

_LOCK_POLL = 0.1
#: Seconds a multi-rack login waits at its end for an open walk tab to show the final list.
WALK_LINGER = 4.0
#: Seconds it then gives a browser command that has not returned yet (one that reads the page itself).
BROWSER_GRACE = 1.0


@dataclass(frozen=True)
class RackLoginResult:
    """How one rack's login ended: its session's email, or the error itself (type, hint, exit code)."""

    rack: str
    url: str
    email: str | None = None
    error: RgwError | None = None
    #: True when another process did the browser login and this one took its session.
    coalesced: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def exit_code(self) -> int:
        return 0 if self.error is None else self.error.exit_code

    def as_json(self) -> dict[str, object]:
        return {
            "rack": self.rack,
            "url": self.url,
            "ok": self.ok,
            "email": self.email,
            "error": self.error.message if self.error is not None else None,
            "exit_code": self.exit_code,
            "coalesced": self.coalesced,
        }


class LoginCoordinator:
    def __init__(
        self,
        *,
        store: ConfigStore,
        browser: BrowserLauncher,
        device: DeviceInfo,
        emit: EventSink,
        options: LoginOptions | None = None,
        policy: RetryPolicy | None = None,
        paste: PasteSource | None = None,
        mfa: Callable[[str], MfaSolver | None] | None = None,
        client_factory: Callable[[LoginRequest], GatewayClient] | None = None,
    ) -> None:
        self.store = store
        self.browser = browser
        self.device = device
        self.emit = emit
        self.options = options or LoginOptions()
        self.policy = policy or RetryPolicy()
        self.paste = paste
        #: Builds the terminal MFA solver of one rack's login (None: MFA only in the browser).
        self.mfa = mfa
        #: A rack's login -> the client it uses (the CLI's is paced by the shared request budget).
        self.client_factory = client_factory or _plain_client
        #: The gateways of this command's racks, origin -> rack (a sign-in returning to another rack's
        #: gateway is refused: ``LoginAttempt.check_sign_in``).
        self.gateways: dict[str, str] = {}

    async def login_one(
        self,
        request: LoginRequest,
        listener: ListenerLike | None = None,
        walk: LoginWalk | None = None,
        data: ConfigData | None = None,
    ) -> RackLoginResult:
        """Log in to one rack; errors become a failed result (never an exception).

        ``data``: the config as this command read it (with this rack's token); read here without it.
        """
        try:
            if data is None:
                data = await self.store.read(tokens=[request.rack])
            return await self._login_one(request, listener, walk, data.rack(request.rack))
        except RgwError as exc:
            self.emit(LoginFailed(request.rack, exc.message))
            return RackLoginResult(request.rack, request.url, error=exc)

    async def _login_one(
        self, request: LoginRequest, listener: ListenerLike | None, walk: LoginWalk | None, before: RackConfig | None
    ) -> RackLoginResult:
        lock = RackLoginLock(self.store.directory, request.rack, request.url)
        await self.store.ensure_directory()
        await self.store.check_lock_file()  # now, not after the user signed in for a session it cannot save
        if not lock.try_acquire():
            coalesced = await self._wait_for_other(request, lock, before.token if before else None, walk)
            if coalesced is not None:
                return coalesced
        try:
            await lock.publish()  # which gateway URL: a waiter takes over only a login to the same one

            async def publish(start: LoginStart) -> None:
                await lock.publish(start.auth_url)

            async with self.client_factory(request) as client:
                flow = LoginFlow(
                    client=client,
                    store=self.store,
                    browser=self.browser,
                    device=self.device,
                    emit=self.emit,
                    policy=self.policy,
                    options=self.options,
                    listener=listener,
                    paste=self.paste,
                    mfa=self.mfa(request.rack) if self.mfa else None,
                    on_start=publish,
                    walk=walk,
                    walk_opens_browser=self._walk_opens_browser(),
                    known_gateway=answered_before(before, request.url),
                    other_gateways=self.gateways,
                    remembered=before,
                )
                session = await flow.run(request.rack)
            return RackLoginResult(request.rack, request.url, email=session.email)
        finally:
            with anyio.CancelScope(shield=True):
                await lock.release()

    async def _wait_for_other(
        self, request: LoginRequest, lock: RackLoginLock, old_token: str | None, walk: LoginWalk | None
    ) -> RackLoginResult | None:
        """Wait for the process holding the rack's login; its session, or None to log in ourselves.

        Its session is taken only when it logs in to this gateway URL (its holder record says so, and
        the config says so when it is done); its sign-in URL is shown only then.
        """
        announced = False
        waited = 0.0
        with until(self.options.ends_at()) as scope:
            while not lock.try_acquire():
                pid, gateway, url = await lock.holder()
                other = gateway if gateway is not None and not same_gateway(gateway, request.url) else None
                # Written by another process: shown only for this gateway, checked like any sign-in URL.
                url = _fit_for_browser(url, request) if same_gateway(gateway, request.url) else None
                if waited == 0.0:
                    holder = f"process {pid}" if pid else "another process"
                    trace.debug("lock: the login to %s is held by %s; waiting for it", request.rack, holder)
                if not announced and (url is not None or other is not None or waited >= 2.0):
                    self.emit(CoalescedWait(request.rack, pid, url, other_url=other))
                    if walk is not None and other is None:
                        walk.elsewhere(request.rack, url)
                    announced = True
                await anyio.sleep(_LOCK_POLL)
                waited += _LOCK_POLL
        if waited:
            trace.debug("lock: the login to %s was released after %.1f s", request.rack, waited)
        if scope.cancelled_caught:
            raise LoginTimeout(f"login to {request.rack} timed out waiting for another rack-gateway login to finish")
        after = (await self.store.read(tokens=[request.rack])).rack(request.rack)  # the other's session
        if after is not None and after.token and after.token != old_token and same_gateway(after.url, request.url):
            await lock.release()
            self.emit(LoggedIn(request.rack, after.email or ""))
            return RackLoginResult(request.rack, request.url, email=after.email, coalesced=True)
        return None  # the other login failed: we hold the lock now and log in ourselves

    async def login_all(
        self,
        requests: Sequence[LoginRequest],
        *,
        parallel: int = DEFAULT_PARALLEL,
        on_result: Callable[[RackLoginResult], object] | None = None,
    ) -> list[RackLoginResult]:
        """Log in to every rack, at most ``parallel`` at a time, with one shared loopback listener.

        With more than one rack and a listener, one browser tab walks through them all (``LoginWalk``).
        """
        unique = list({r.rack: r for r in requests}.values())
        self.gateways = _gateways(unique)
        self.options = self.options.starting_now()  # one deadline for the whole login, every rack
        # One read for the whole command, with the sessions each login replaces (and revokes).
        data = await self.store.read(tokens=[r.rack for r in unique])
        results: dict[str, RackLoginResult] = {}
        limiter = anyio.CapacityLimiter(max(1, parallel))
        launched = anyio.Event()  # the walk's browser launch has returned
        async with anyio.create_task_group() as services:
            listener = await self._shared_listener(services, unique) if len(unique) > 1 else None
            walk = None
            if listener is not None:
                walk = LoginWalk(
                    [r.rack for r in unique],
                    path="/" + secrets.token_urlsafe(16),
                    terminal=listener.terminal,
                    parallel=parallel,
                    on_stall=lambda rack, url: self.emit(WalkQueued(rack, url, True, stalled=True)),
                )
                walk_url = listener.attach(walk)
                services.start_soon(walk.watch)

            async def run(request: LoginRequest) -> None:
                async with limiter:
                    if len(unique) > 1:
                        self.emit(LoginStarted(request.rack))
                    if walk is not None:
                        walk.starting(request.rack)
                    result = results[request.rack] = await self.login_one(request, listener, walk, data)
                if on_result is not None:
                    on_result(result)
                if walk is not None:
                    walk.finish(request.rack, ok=result.ok, detail=result.email or _error_text(result))
                    finished, failed = walk.counts()
                    self.emit(WalkProgress("", finished, failed, walk.total))

            async with anyio.create_task_group() as logins:
                for request in unique:
                    logins.start_soon(run, request)
                if walk is not None:  # after the logins took their slots: the page's first answer is a hop
                    services.start_soon(self._open_walk, walk_url, len(unique), launched)
            if walk is not None and walk.tab_is_open():
                with anyio.move_on_after(WALK_LINGER):  # the tab shows the final list, not "connection refused"
                    await walk.final_view()
                with anyio.move_on_after(BROWSER_GRACE):  # a browser command still reading the page
                    await launched.wait()
            services.cancel_scope.cancel()
        return [results[r.rack] for r in unique]

    def _walk_opens_browser(self) -> bool:
        return self.options.open_browser and can_open(self.browser)

    async def _open_walk(self, url: str, racks: int, launched: anyio.Event) -> None:
        """The multi-rack login's one browser launch: the walk's page."""
        if not self._walk_opens_browser():
            launched.set()
            self.emit(WalkAvailable("", url, racks))
            return
        self.emit(WalkOpening("", url, racks))
        try:
            opened = await self.browser.open(url)
        except Exception:  # a broken browser never breaks the login: the page's URL is shown
            opened = False
        finally:
            launched.set()
        if not opened:
            self.emit(BrowserUnavailable("", url, "no browser could be opened", url_shown=True))

    async def _shared_listener(
        self, services: anyio.abc.TaskGroup, requests: Sequence[LoginRequest]
    ) -> CallbackListener | None:
        if not self.options.use_loopback:
            return None
        from rgw.login.listener import serve_listener

        try:
            previous = await self._previous_listeners(requests)
            return await serve_listener(services, port=self.options.loopback_port, previous=previous)
        except OSError:
            return None  # polling alone still completes every login

    async def _previous_listeners(self, requests: Sequence[LoginRequest]) -> list[str]:
        """The listeners interrupted logins of these racks were told to send their browsers back to."""
        if not self.options.resume:
            return []
        found = []
        for request in requests:
            pending = PendingLogins(
                self.store.directory, request.rack, request.url, max_age=self.options.resume_max_age
            )
            record = await pending.load()
            if record is not None and record.listener:
                found.append(record.listener)
        return found


def _fit_for_browser(url: str | None, request: LoginRequest) -> str | None:
    if url is None:
        return None
    try:
        return browser_url(url, gateway=request.url, insecure_http=request.insecure_http)
    except ValueError:
        return None


def _gateways(requests: Sequence[LoginRequest]) -> dict[str, str]:
    """origin -> rack of each request (the first rack of an origin names it)."""
    found: dict[str, str] = {}
    for request in requests:
        try:
            found.setdefault(origin(request.url), request.rack)
        except ValueError:
            continue  # not a URL this login could reach anyway
    return found


def _error_text(result: RackLoginResult) -> str:
    return result.error.message if result.error is not None else ""


def _plain_client(request: LoginRequest) -> GatewayClient:
    return GatewayClient(request.url, insecure_http=request.insecure_http)
