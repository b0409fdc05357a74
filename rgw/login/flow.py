"""The login orchestrator: the only code in rgw that coordinates concurrency.

``LoginFlow.run`` first checks the gateway is reachable (``/auth/cli/start``, retried), then runs,
in one task group under one deadline: the browser launch (worker thread), the loopback listener
(woken by the gateway's redirect), the poller (long poll or steady pace, backoff on failures), a
paste fallback on a terminal, and the terminal MFA prompt when the gateway asks for MFA.  The first
outcome wins: a session (saved, then every other task cancelled and the listener closed) or a
terminal error (the gateway's message).  Nothing is written to the config unless a session won.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc

from rgw.client import GatewayClient, login_refused
from rgw.config import ConfigData, ConfigStore
from rgw.errors import LoginTimeout, RgwError, UsageError
from rgw.login.browser import BrowserLauncher
from rgw.login.events import (
    BrowserOpened,
    BrowserOpening,
    BrowserUnavailable,
    CallbackReceived,
    EventSink,
    GatewayReachable,
    GatewayRetry,
    LoggedIn,
    MfaPrompt,
    OAuthSucceeded,
    Waiting,
)
from rgw.login.poller import LoginPoller, Wakeup
from rgw.models import DeviceInfo, LoginPending, LoginStart, RackConfig, Session
from rgw.retry import RetryAttempt, RetryPolicy, describe_failure, failure_kind

DEFAULT_TIMEOUT = 600.0

TIMEOUT_HINT = (
    "Likely causes: the browser sign-in was not finished, your email domain is not allowed on this "
    "gateway, or the consent page was cancelled. Run the login again."
)


class MfaSolver(Protocol):
    """Completes the MFA stage from the terminal; returns once the gateway accepted a code."""

    async def solve(self, client: GatewayClient, start: LoginStart, methods: tuple[str, ...]) -> None: ...


class PasteSource(Protocol):
    """Lines the user pastes into the terminal (None at end of input)."""

    async def read_line(self) -> str | None: ...


class CallbackWaiterLike(Protocol):
    async def wait(self) -> CallbackResultLike: ...
    async def wait_served(self) -> None: ...


class CallbackResultLike(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def error(self) -> str | None: ...


class ListenerLike(Protocol):
    @property
    def uri(self) -> str: ...
    def expect(self, state: str, rack: str) -> CallbackWaiterLike: ...
    def forget(self, state: str) -> None: ...
    async def serve(self, *, task_status: anyio.abc.TaskStatus[str] = ...) -> None: ...


@dataclass(frozen=True)
class LoginOptions:
    timeout: float = DEFAULT_TIMEOUT
    open_browser: bool = True
    use_loopback: bool = True
    loopback_port: int = 0
    #: Seconds a long poll may be held by a supporting gateway (0 disables long polling).
    long_poll: float = 25.0
    #: Seconds between polls while pending, when the gateway does not long-poll.
    pace: float = 1.0
    #: Tries of ``/auth/cli/start`` before the gateway is declared unreachable (about 15 s of
    #: backoff): enough to ride out a few seconds of blackout on a link that loses ~40% of tries.
    start_attempts: int = 10
    make_current: bool = True
    #: Seconds the loopback listener stays up after the login for the browser's redirect.
    linger: float = 2.0


class _Outcome:
    """The first result of the race; later ones are ignored."""

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.value: Session | RgwError | None = None

    def finish(self, value: Session | RgwError) -> None:
        if self.value is None:
            self.value = value
            self.scope.cancel()


def paste_result(line: str, state: str) -> tuple[bool, str | None] | None:
    """(ok, error) for a pasted callback URL of this login, None for anything else."""
    text = line.strip()
    if not text:
        return None
    query = parse_qs(urlsplit(text).query) if "?" in text else parse_qs(text)
    pasted_state = (query.get("state") or [""])[0]
    result = (query.get("result") or [""])[0]
    if not pasted_state or not hmac.compare_digest(pasted_state.encode(), state.encode()):
        return None
    if result == "ok" or (not result and query.get("code")):
        return (True, None)
    if result == "error":
        return (False, (query.get("error") or ["login failed in the browser"])[0])
    return None


class LoginFlow:
    def __init__(
        self,
        *,
        client: GatewayClient,
        store: ConfigStore,
        browser: BrowserLauncher,
        device: DeviceInfo,
        emit: EventSink,
        policy: RetryPolicy | None = None,
        options: LoginOptions | None = None,
        listener: ListenerLike | None = None,
        listener_factory: Callable[[int], ListenerLike] | None = None,
        paste: PasteSource | None = None,
        mfa: MfaSolver | None = None,
        on_start: Callable[[LoginStart], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.browser = browser
        self.device = device
        self.emit = emit
        self.policy = policy or RetryPolicy()
        self.options = options or LoginOptions()
        self.listener = listener
        self.listener_factory = listener_factory
        self.paste = paste
        self.mfa = mfa
        #: Called once the gateway has answered /start (the coordinator publishes the sign-in URL).
        self.on_start = on_start
        #: The last poller, kept for benchmarks (requests per login).
        self.poller: LoginPoller | None = None
        #: The session once saved.
        self.session: Session | None = None
        self._waiter: CallbackWaiterLike | None = None
        self._browser_opened = False

    async def run(self, rack: str) -> Session:
        """Log in to ``rack`` at ``client.base_url``; save and return the session."""
        deadline = anyio.current_time() + self.options.timeout
        self.session = None
        with anyio.move_on_after(self.options.timeout):
            await self._login(rack, deadline)
        if self.session is None:  # saved sessions survive a deadline that passes while lingering
            raise LoginTimeout(
                f"login to {rack} timed out after {self.options.timeout:g} s without a completed sign-in",
                hint=TIMEOUT_HINT,
            )
        return self.session

    async def save(self, rack: str, session: Session) -> None:
        url = self.client.base_url
        make_current = self.options.make_current

        def change(data: ConfigData) -> None:
            data.put_rack(
                RackConfig(
                    name=rack,
                    url=url,
                    token=session.token,
                    email=session.email,
                    expires_at=session.expires_at,
                    session_id=session.session_id,
                    channel=session.channel or "cli",
                    device_id=session.device_id or self.device.device_id,
                    device_name=session.device_name or self.device.device_name,
                    mfa_verified=session.mfa_verified,
                )
            )
            if make_current or data.current is None:
                data.current = rack
            if not data.machine_id:
                data.raw["machine_id"] = self.device.device_id

        await self.store.update(change)

    async def _start(self, rack: str, loopback_uri: str | None, deadline: float) -> LoginStart:
        failures = 0

        def on_retry(attempt: RetryAttempt) -> None:
            nonlocal failures
            failures += 1
            self.emit(GatewayRetry(rack, failures, attempt.delay, describe_failure(attempt.error),
                                    failure_kind(attempt.error)))

        policy = self.policy.with_attempts(self.options.start_attempts)
        async for attempt in policy.retrying(deadline=deadline, on_retry=on_retry):
            with attempt:
                return await self.client.start_login(loopback_uri=loopback_uri)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _login(self, rack: str, deadline: float) -> Session:
        outcome: Session | RgwError | None = None
        async with anyio.create_task_group() as services:
            try:
                listener = self.listener
                if listener is None and self.options.use_loopback:
                    listener = await self._start_listener(services)
                start = await self._start(rack, listener.uri if listener else None, deadline)
                self.emit(GatewayReachable(rack, self.client.base_url, start.loopback))
                if self.on_start is not None:
                    await self.on_start(start)
                try:
                    outcome = await self._race(rack, start, listener, deadline, services)
                    if isinstance(outcome, Session):
                        with anyio.CancelScope(shield=True):
                            await self.save(rack, outcome)
                        self.session = outcome
                        self.emit(LoggedIn(rack, outcome.email))
                        await self._linger(listener)
                finally:
                    if listener is not None:
                        listener.forget(start.state)
            except RgwError as exc:  # raised outside the group, so callers never see an ExceptionGroup
                outcome = exc
            finally:
                services.cancel_scope.cancel()
        assert outcome is not None
        if isinstance(outcome, RgwError):
            raise outcome
        return outcome

    async def _linger(self, listener: ListenerLike | None) -> None:
        """Keep the listener up a moment for a browser redirect that is on its way.

        The gateway wakes the poller and redirects the browser at the same instant; closing the
        listener at once would show the user a "connection refused" page after a good login.
        """
        waiter = self._waiter
        if listener is None or waiter is None or not self._browser_opened:
            return
        with anyio.move_on_after(self.options.linger):
            await waiter.wait()
            await waiter.wait_served()

    async def _start_listener(self, services: anyio.abc.TaskGroup) -> ListenerLike | None:
        if self.listener_factory is None:
            from rgw.login.listener import CallbackListener

            listener: ListenerLike = CallbackListener(port=self.options.loopback_port)
        else:
            listener = self.listener_factory(self.options.loopback_port)
        try:
            await services.start(listener.serve)
        except OSError as exc:
            if self.options.loopback_port:
                raise UsageError(
                    f"cannot listen on 127.0.0.1:{self.options.loopback_port}: {exc.strerror or exc}",
                    hint="Choose another --loopback-port, or leave it out for a random port.",
                ) from exc
            return None  # no loopback: polling alone still completes the login
        return listener

    async def _race(
        self,
        rack: str,
        start: LoginStart,
        listener: ListenerLike | None,
        deadline: float,
        services: anyio.abc.TaskGroup,
    ) -> Session | RgwError:
        wake = Wakeup()
        poller = LoginPoller(
            self.client,
            start,
            self.device,
            rack=rack,
            emit=self.emit,
            policy=self.policy,
            deadline=deadline,
            wake=wake,
            pace=self.options.pace,
            long_poll=self.options.long_poll,
            # A listener was offered and not taken: the gateway has no extensions, so no long polls.
            first_wait=self.options.pace if listener is not None and not start.loopback else 0.0,
        )
        self.poller = poller
        async with anyio.create_task_group() as race:
            outcome = _Outcome(race.cancel_scope)
            paste_scope = anyio.CancelScope()  # its own scope: the MFA prompt stops it, nothing else
            seen: dict[str, bool] = {}

            def once(key: str) -> bool:
                first = key not in seen
                seen[key] = True
                return first

            async def on_pending(pending: LoginPending) -> None:
                stage = pending.stage or "browser"
                if stage == "mfa":
                    if once("oauth"):
                        self.emit(OAuthSucceeded(rack))
                    if once("mfa"):
                        self.emit(MfaPrompt(rack, pending.mfa_methods))
                        if self.mfa is not None:
                            # The prompt reads the terminal from now on: the paste reader must let go.
                            paste_scope.cancel()
                            race.start_soon(solve_mfa, pending.mfa_methods)
                        else:
                            self.emit(Waiting(rack, "mfa"))
                elif once("waiting"):
                    self.emit(Waiting(rack, stage))

            async def solve_mfa(methods: tuple[str, ...]) -> None:
                assert self.mfa is not None
                try:
                    await self.mfa.solve(self.client, start, methods)
                except RgwError as exc:
                    outcome.finish(exc)
                    return
                # Verified from the terminal: the browser stays on its MFA page, no redirect will
                # reach the listener, so there is nothing to linger for.
                self._waiter = None
                wake.set()

            async def poll() -> None:
                try:
                    session = await poller.poll_until_complete(on_pending)
                except RgwError as exc:
                    outcome.finish(exc)
                    return
                if once("oauth"):
                    self.emit(OAuthSucceeded(rack))
                outcome.finish(session)

            async def open_browser() -> None:
                self._browser_opened = True  # a browser on this machine may hit the listener
                try:
                    opened = await self.browser.open(start.auth_url)
                except Exception:  # a broken browser never breaks the login: the URL is shown
                    opened = False
                self._browser_opened = opened
                if self.session is not None:
                    return  # the login finished while the browser was still starting
                if opened:
                    self.emit(BrowserOpened(rack))
                else:
                    self.emit(BrowserUnavailable(rack, start.auth_url, "no browser could be opened"))

            async def watch_callback(waiter: CallbackWaiterLike) -> None:
                result = await waiter.wait()
                self.emit(CallbackReceived(rack, result.ok, "loopback"))
                if result.ok:
                    wake.set()
                else:
                    outcome.finish(login_refused(result.error or "login failed in the browser"))

            async def read_paste(paste: PasteSource) -> None:
                with paste_scope:
                    while (line := await paste.read_line()) is not None:
                        parsed = paste_result(line, start.state)
                        if parsed is None:
                            continue
                        ok, error = parsed
                        self.emit(CallbackReceived(rack, ok, "paste"))
                        if ok:
                            wake.set()
                        else:
                            outcome.finish(login_refused(error or "login failed in the browser"))
                            return

            # Register the state before the browser can possibly reach the listener.
            self._waiter = None
            if listener is not None and start.loopback:
                self._waiter = listener.expect(start.state, rack)
                race.start_soon(watch_callback, self._waiter)
            # The URL is shown before the launch, so a user on a remote machine can copy it.
            if self.options.open_browser:
                self.emit(BrowserOpening(rack, start.auth_url))
                # Not part of the race: a browser still on its way to the listener is not cut off
                # when the poller wins (it ends with the listener, after the linger).
                services.start_soon(open_browser)
            else:
                self.emit(BrowserUnavailable(rack, start.auth_url, "--no-browser"))
            once("waiting")
            self.emit(Waiting(rack, "browser"))
            if self.paste is not None:
                race.start_soon(read_paste, self.paste)
            race.start_soon(poll)
        assert outcome.value is not None
        return outcome.value
