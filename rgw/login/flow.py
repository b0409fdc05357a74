"""The login orchestrator: the only code in rgw that coordinates concurrency.

``LoginFlow`` holds what every login to one gateway shares (client, store, browser, options);
``LoginFlow.run(rack)`` makes one ``LoginAttempt``, and the attempt tells the story:

1. ``reach_gateway``: ``/auth/cli/start``, retried (a gateway that cannot be reached is said so);
2. then, in one task group under one deadline, ``open_browser`` (a worker thread), ``serve_callback``
   (the loopback listener, woken by the gateway's redirect), ``poll`` (long poll or steady pace,
   backoff on failures), ``read_pasted_url`` (on a terminal: a pasted URL, or an MFA code typed
   while a gateway that does not report its stage waits) and ``ask_for_mfa`` (when the gateway
   reports the MFA stage) run at once; ``--mfa-code`` goes to such a gateway after each poll;
3. ``decide`` is the one place the outcome is chosen: the first session (saved, then every other
   task cancelled and the listener closed) or terminal error.  Only the gateway can fail a login: a
   browser or a pasted URL saying "error" makes the poller ask at once, and the gateway's answer
   decides (a forged redirect cannot abort a login).

Nothing is written to the config unless a session won; the login in progress is kept beside it
(``rgw.login.pending``) until it ends, so that an interrupted one can be resumed.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc

from rgw.client import GatewayClient
from rgw.config import ConfigData, ConfigStore
from rgw.deadline import until
from rgw.errors import GatewayError, LoginError, LoginStateUnknown, LoginTimeout, RgwError, UsageError
from rgw.locks import file_error
from rgw.login.browser import BrowserLauncher, can_open
from rgw.login.events import (
    BrowserOpened,
    BrowserOpening,
    BrowserUnavailable,
    CallbackReceived,
    EventSink,
    GatewayReachable,
    LoggedIn,
    LoginResumed,
    MfaCodeEarly,
    MfaCodeUnused,
    MfaPrompt,
    MfaVerified,
    OAuthSucceeded,
    PasteIgnored,
    ReplacedSessionRevoked,
    ResumeDiscarded,
    RetryEvents,
    SignInElsewhere,
    StillWaiting,
    Waiting,
    WalkQueued,
)
from rgw.login.mfa import typed_code
from rgw.login.pending import RESUME_MAX_AGE, PendingLogin, PendingLogins
from rgw.login.poller import LoginPoller, Wakeup
from rgw.login.returns import RETURN_FIELD, SignInCheck, check_sign_in, remembered_return
from rgw.models import DeviceInfo, LoginPending, LoginStart, RackConfig, Session
from rgw.retry import RetryPolicy
from rgw.urls import browser_url, normalize_url, origin_host

DEFAULT_TIMEOUT = 600.0
#: Seconds a re-login spends revoking the session it replaced before giving up on it.
REVOKE_PATIENCE = 5.0


class MfaCodes(Protocol):
    """Sends MFA codes of a login whose gateway does not report its stage (``rgw.login.mfa.LoginCodes``)."""

    async def send(self, code: str | None = None) -> str: ...


class MfaSolver(Protocol):
    """Completes the MFA stage from the terminal; returns once the gateway accepted a code."""

    async def solve(self, client: GatewayClient, start: LoginStart, methods: tuple[str, ...]) -> None: ...

    def codes(self, client: GatewayClient, start: LoginStart, *, given: bool) -> MfaCodes: ...

    @property
    def given_code(self) -> bool: ...

    @property
    def expects_mfa(self) -> bool: ...

    @property
    def method(self) -> str: ...


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


class WalkLike(Protocol):
    """The one-tab walk of a multi-rack login (``rgw.login.walk.LoginWalk``)."""

    def offer(
        self, rack: str, *, auth_url: str, state: str, hop: bool, returns_to: str | None = None, elsewhere: bool = False
    ) -> None: ...
    def finish(self, rack: str, *, ok: bool, detail: str) -> None: ...


class ListenerLike(Protocol):
    @property
    def uri(self) -> str: ...
    def serves(self, uri: str) -> bool: ...
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
    #: Tries of ``/auth/cli/start`` before a gateway never seen before is declared unreachable (about
    #: 15 s of backoff: enough to ride out a few seconds of blackout on a link that loses ~40% of
    #: tries; then "check the URL").  A gateway that answered before (``answered_before``) is tried
    #: until the deadline: the VPN may come up while the login already runs.
    start_attempts: int = 10
    make_current: bool = True
    #: Seconds the loopback listener stays up after the login for the browser's redirect.
    linger: float = 2.0
    #: Seconds of waiting before the first "still waiting" reminder (then 3x as long each time; 0: none).
    remind_after: float = 60.0
    #: ``--token-storage``: where this machine keeps session tokens from now on (None: as it is).
    token_storage: str | None = None
    #: Keep the login in progress on disk and take up an interrupted one (``rgw.login.pending``).
    resume: bool = True
    #: Seconds after its start a pending login may still be resumed.
    resume_max_age: float = RESUME_MAX_AGE
    #: ``--accept-redirect HOST``: a sign-in now returning to HOST is accepted (and remembered) although
    #: the rack remembers another host.
    accept_return: str | None = None
    #: Seconds after polling starts that ``--mfa-code`` is still sent to a gateway that does not report
    #: its stage (after about a minute a TOTP code cannot be valid any more).
    given_code_for: float = 60.0
    #: The whole login's deadline (an ``anyio.current_time()`` value), fixed once where the command
    #: starts (``starting_now``): every rack's login ends by it.  None: ``timeout`` from each start.
    deadline: float | None = None

    def starting_now(self) -> LoginOptions:
        """These options with the deadline fixed: ``timeout`` seconds from now, for every rack."""
        return replace(self, deadline=anyio.current_time() + self.timeout)

    def ends_at(self) -> float:
        """The login's deadline: the fixed one, else ``timeout`` seconds from now."""
        return self.deadline if self.deadline is not None else anyio.current_time() + self.timeout


@dataclass(frozen=True)
class Pasted:
    """What a line pasted while waiting means: this login's callback (``ok``), or why it is not."""

    ok: bool | None
    reason: str | None = None


def paste_result(line: str, state: str) -> Pasted:
    """Read a pasted line: this login's callback URL (ok or error), or the reason it is not one."""
    text = line.strip()
    if len(text) > 8192:
        return Pasted(None, "that line is too long to be the address your browser ended on")
    try:
        query = parse_qs(urlsplit(text).query) if "?" in text else parse_qs(text)
    except ValueError:
        query = {}
    pasted_state = (query.get("state") or [""])[0]
    result = (query.get("result") or [""])[0]
    if not pasted_state:
        return Pasted(
            None,
            "that is not a URL with this login's state in it; paste the whole address from the "
            "browser's address bar after signing in",
        )
    if not hmac.compare_digest(pasted_state.encode(), state.encode()):
        return Pasted(None, "that URL belongs to another login (its state does not match this one)")
    if result == "ok" or (not result and query.get("code")):
        return Pasted(True)
    if result == "error":
        return Pasted(False, (query.get("error") or ["login failed in the browser"])[0])
    return Pasted(None, "that URL has this login's state but no result; paste the address the browser ended on")


def answered_before(rack: RackConfig | None, url: str) -> bool:
    """Whether a stored rack says its gateway at ``url`` answered before (only a login stores one)."""
    if rack is None or not rack.url:
        return False
    try:
        return normalize_url(rack.url) == normalize_url(url)
    except UsageError:  # a stored URL that is not one (edited by hand)
        return False


class LoginFlow:
    """Logins to one gateway: the collaborators they share.  ``run(rack)`` is one attempt."""

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
        paste: PasteSource | None = None,
        mfa: MfaSolver | None = None,
        on_start: Callable[[LoginStart], Awaitable[None]] | None = None,
        wall_clock: Callable[[], float] = time.time,
        walk: WalkLike | None = None,
        walk_opens_browser: bool = False,
        known_gateway: bool | None = None,
        other_gateways: Mapping[str, str] | None = None,
        remembered: RackConfig | bool | None = False,
    ) -> None:
        self.client = client
        self.store = store
        self.browser = browser
        self.device = device
        self.emit = emit
        self.policy = policy or RetryPolicy()
        self.options = options or LoginOptions()
        #: A listener shared by many logins (multi-rack), else each attempt starts its own.
        self.listener = listener
        self.paste = paste
        self.mfa = mfa
        #: Called once the gateway has answered /start (the coordinator publishes the sign-in URL).
        self.on_start = on_start
        #: Wall-clock time, for the pending login's age (it must survive the process).
        self.wall_clock = wall_clock
        #: A multi-rack login's one-tab walk: this rack's sign-in is offered to it.
        self.walk = walk
        #: The walk's tab is the browser: this login opens none of its own.
        self.walk_opens_browser = walk_opens_browser and walk is not None
        #: The last attempt, kept for benchmarks and tests (its poller counts requests).
        self.attempt: LoginAttempt | None = None
        #: Whether this rack's gateway answered before (None: the config says, ``answered_before``).
        self.known_gateway = known_gateway
        #: The other racks' gateways of the same command, origin -> rack: a sign-in returning to one
        #: of them would hand that gateway's session to this one's.
        self.other_gateways = dict(other_gateways or {})
        #: The rack's entry as the command read it (None: not stored; False: read it from the config).
        self._remembered = remembered

    @property
    def poller(self) -> LoginPoller | None:
        return self.attempt.poller if self.attempt is not None else None

    async def run(self, rack: str) -> Session:
        """Log in to ``rack`` at ``client.base_url``; save and return the session."""
        self.attempt = LoginAttempt(self, rack)
        return await self.attempt.run()

    async def answered_before(self, rack: str) -> bool:
        """Whether ``rack``'s gateway answered a login before: the rack is stored with this URL."""
        if self.known_gateway is None:
            self.known_gateway = answered_before((await self.store.read(tokens=())).rack(rack), self.client.base_url)
        return self.known_gateway

    async def remembered_return(self, rack: str) -> str | None:
        """The origin ``rack``'s sign-in returned to at its last login (``remembered_return``)."""
        return remembered_return(await self._remembered_rack(rack))

    async def verified_mfa_before(self, rack: str) -> bool:
        """Whether ``rack``'s session this login replaces verified MFA at this gateway (its account has MFA)."""
        before = await self._remembered_rack(rack)
        return before is not None and before.mfa_verified is True and answered_before(before, self.client.base_url)

    async def _remembered_rack(self, rack: str) -> RackConfig | None:
        """The rack's entry as the command read it, read from the config once when it was not handed in."""
        if self._remembered is False:
            self._remembered = (await self.store.read(tokens=())).rack(rack)
        return self._remembered if isinstance(self._remembered, RackConfig) else None

    async def save(self, rack: str, session: Session, *, returns_to: str | None = None) -> str | None:
        """Store the session; returns the token it replaced at the same gateway (None if none).

        ``returns_to``: the origin the sign-in returned to, remembered for the rack (``RETURN_FIELD``).
        """
        url = self.client.base_url
        insecure_http = True if self.client.insecure_http else None
        device = self.device
        make_current = self.options.make_current
        token_storage = self.options.token_storage

        def change(data: ConfigData) -> str | None:
            old = data.rack(rack)
            replaced = old.token if old is not None and old.token and old.url == url else None
            data.put_rack(
                RackConfig(
                    name=rack,
                    url=url,
                    token=session.token,
                    email=session.email,
                    expires_at=session.expires_at,
                    session_id=session.session_id,
                    channel=session.channel or "cli",
                    device_id=session.device_id or device.device_id,
                    device_name=session.device_name or device.device_name,
                    mfa_verified=session.mfa_verified,
                    insecure_http=insecure_http,
                    extra={RETURN_FIELD: returns_to} if returns_to else {},
                )
            )
            if token_storage is not None:
                data.raw["token_storage"] = token_storage  # rgw.secrets moves every token on this write
            if make_current or data.current is None:
                data.current = rack
            if not data.machine_id:
                data.raw["machine_id"] = device.device_id
            return replaced if replaced != session.token else None

        return await self.store.update(change)


class LoginAttempt:
    """One login to one rack, from ``/start`` to a saved session or an error."""

    def __init__(self, flow: LoginFlow, rack: str) -> None:
        self.flow = flow
        self.rack = rack
        self.client = flow.client
        self.options = flow.options
        self.emit = flow.emit
        #: THE deadline of this login (the command's, shared by every rack), applied by ``run``'s scope.
        self.deadline = self.options.ends_at()
        self.wake = Wakeup()
        self.start: LoginStart | None = None
        #: The retries of ``/auth/cli/start`` (their last failure, if the deadline cuts a try short).
        self._start_retries: RetryEvents | None = None
        self.listener: ListenerLike | None = None
        self.poller: LoginPoller | None = None
        #: The session once saved (it survives a deadline that passes while lingering).
        self.session: Session | None = None
        self._outcome: Session | RgwError | None = None
        self._race: anyio.CancelScope | None = None
        self._racers: anyio.abc.TaskGroup | None = None
        #: The paste reader's own scope: the MFA prompt takes the terminal from it, nothing else.
        self._paste_scope = anyio.CancelScope()
        self._waiter: CallbackWaiterLike | None = None
        #: The listener expects this attempt's state (it was not another login's already).
        self._expected = False
        self._browser_opened = False
        self._mfa_in_browser = False
        #: Whether the gateway reports the login's stage (None: not known yet).
        self._stages: bool | None = None
        #: Codes typed in the terminal, and the one given with ``--mfa-code`` (until it is over).
        self._typed: MfaCodes | None = None
        self._given: MfaCodes | None = None
        self._polling_since = 0.0
        self._said: set[str] = set()
        #: This rack's pending-login record (None: resuming is off).
        self.pending = (
            PendingLogins(
                flow.store.directory,
                rack,
                flow.client.base_url,
                max_age=self.options.resume_max_age,
                clock=flow.wall_clock,
            )
            if self.options.resume
            else None
        )
        #: The interrupted login this attempt took up, if any, and where the gateway said it stands.
        self.resumed: PendingLogin | None = None
        self.resumed_at: LoginPending | None = None
        #: Where the sign-in returns to (``check_sign_in``).
        self.sign_in = SignInCheck()

    async def run(self) -> Session:
        with until(self.deadline):
            await self._login()
        if self.session is None:
            if isinstance(self._outcome, RgwError):
                raise self._outcome  # decided before the deadline, which only cut the linger short
            await self.end_pending()  # the login ended: a later one starts afresh
            last = self._start_retries.last if self._start_retries is not None and self.start is None else None
            if isinstance(last, RgwError):
                raise last  # the gateway never answered: its failure says why, not "sign-in not finished"
            raise LoginTimeout(
                f"login to {self.rack} timed out after {self.options.timeout:g} s without a completed sign-in"
            )
        return self.session

    def say_once(self, key: str, event: object) -> None:
        """Emit ``event`` the first time ``key`` comes up in this attempt."""
        if key not in self._said:
            self._said.add(key)
            self.emit(event)  # type: ignore[arg-type]

    def decide(self, value: Session | RgwError) -> None:
        """The first outcome wins; everything still racing is cancelled."""
        if self._outcome is None:
            self._outcome = value
            if self._race is not None:
                self._race.cancel()

    async def _login(self) -> None:
        outcome: Session | RgwError | None = None
        async with anyio.create_task_group() as services:
            try:
                found = await self.pending.load() if self.pending is not None else None
                self.listener = self.flow.listener or await self.start_listener(services, found)
                redeemed = await self.resume_pending(found)
                if self.resumed is not None:
                    self.start = self.resumed.start
                    if self.flow.on_start is not None:
                        await self.flow.on_start(self.start)
                else:
                    self.start = await self.reach_gateway()
                try:
                    outcome = redeemed or await self.race(services)
                    if isinstance(outcome, LoginError):
                        await self.end_pending()
                        if self.flow.walk is not None:
                            self.flow.walk.finish(self.rack, ok=False, detail=outcome.message)
                    if isinstance(outcome, Session):
                        with anyio.CancelScope(shield=True):
                            replaced = await self.flow.save(self.rack, outcome, returns_to=self.sign_in.returns_to)
                            await self.end_pending()
                        self.session = outcome
                        self.emit(LoggedIn(self.rack, outcome.email))
                        if self.flow.walk is not None:  # before the linger: the tab moves on at once
                            self.flow.walk.finish(self.rack, ok=True, detail=outcome.email)
                        async with anyio.create_task_group() as after:
                            if replaced is not None:
                                after.start_soon(self.revoke_replaced, replaced)
                            after.start_soon(self.linger)
                    elif isinstance(outcome, LoginError):
                        # The gateway failed the login (domain, user, consent) and sent the browser to
                        # the listener with its error at the same instant: let the browser show it.
                        await self.linger()
                finally:
                    if self._expected and self.listener is not None:
                        self.listener.forget(self.start.state)
            except RgwError as exc:  # raised outside the group, so callers never see an ExceptionGroup
                outcome = exc
            finally:
                services.cancel_scope.cancel()
        if isinstance(outcome, RgwError):
            raise outcome

    async def resume_pending(self, found: PendingLogin | None) -> Session | None:
        """Take up the login an interrupted ``rack-gateway login`` left pending, if there is one.

        One ``/complete`` with its state decides: a session (the sign-in was finished meanwhile) is
        returned; a pending answer makes this attempt wait on that state (``self.resumed``); a state
        the gateway no longer knows is dropped for a fresh login; any other refusal ends the login.
        """
        if self.pending is None or found is None:
            return None
        try:  # the record is ours, but what goes to the terminal or a browser is checked every time
            browser_url(found.start.auth_url, gateway=self.client.base_url, insecure_http=self.client.insecure_http)
            self.sign_in = await self.check_sign_in(found.start)
        except (ValueError, RgwError):
            await self.pending.delete()  # a fresh login faces the same check
            return None
        poller = LoginPoller(
            self.client,
            found.start,
            self.flow.device,
            rack=self.rack,
            emit=self.emit,
            policy=self.flow.policy,
            long_poll=0,
        )
        try:
            answer = await poller.poll_once()
        except LoginStateUnknown:
            await self.pending.delete()
            self.emit(ResumeDiscarded(self.rack, found.started_at))
            return None
        except LoginError:
            await self.pending.delete()
            raise
        self.resumed = found
        if isinstance(answer, Session):
            self.emit(LoginResumed(self.rack, found.started_at, True, found.start.auth_url))
            return answer
        # The race takes up this answer before it polls (an MFA stage prompts at once).
        self.resumed_at = answer
        # Waiting on it, the browser opens again only on Enter (read_pasted_url): say so.
        reopen = self.flow.paste is not None and self.options.open_browser and can_open(self.flow.browser)
        self.emit(
            LoginResumed(
                self.rack, found.started_at, False, found.start.auth_url, stage=answer.stage, can_reopen=reopen
            )
        )
        return None

    async def end_pending(self) -> None:
        """The login ended (a session, a refusal, the deadline): forget its pending record."""
        if self.pending is not None:
            with anyio.CancelScope(shield=True):
                await self.pending.delete()

    async def keep_pending(self, start: LoginStart) -> None:
        """Write this login's pending record (best effort: a login that cannot keep one still works)."""
        if self.pending is None:
            return
        try:
            await self.flow.store.ensure_directory()
            await self.pending.save(start, self.listener.uri if self.listener is not None else None)
        except RgwError:
            return
        except OSError as exc:  # a planted file (hard link, directory, FIFO) or a read-only directory
            problem = file_error(self.pending.path, exc, "write", kind="state files")
            if self.flow.store.on_warning is not None:
                self.flow.store.on_warning(
                    f"Warning: {problem.message}: an interrupted login of {self.rack} cannot be taken up again. "
                    f"{problem.hint}"
                )

    async def start_listener(
        self, services: anyio.abc.TaskGroup, found: PendingLogin | None = None
    ) -> ListenerLike | None:
        """The loopback listener the gateway's redirect wakes (none: polling alone completes it)."""
        if not self.options.use_loopback:
            return None
        from rgw.login.listener import serve_listener

        # An interrupted login's gateway sends its browser back to that login's listener: be it again.
        previous = [found.listener] if found is not None and found.listener else []
        try:
            return await serve_listener(services, port=self.options.loopback_port, previous=previous)
        except OSError as exc:
            if self.options.loopback_port:
                raise UsageError(
                    f"cannot listen on 127.0.0.1:{self.options.loopback_port}: {exc.strerror or exc}",
                    hint="Choose another --loopback-port, or leave it out for a random port.",
                ) from exc
            return None

    async def reach_gateway(self) -> LoginStart:
        """``/auth/cli/start``, retried: the gateway is reachable and a login state exists.

        A gateway that answered before is tried until the deadline (a VPN that comes up late); one
        never seen before only ``start_attempts`` times, and not again after a failure that cannot
        heal (no such name, plain HTTP on an ``https://`` port): the user hears to check the URL.
        """
        known = await self.flow.answered_before(self.rack)
        policy = self.flow.policy if known else self.flow.policy.for_new_gateway(self.options.start_attempts)
        self._start_retries = RetryEvents(self.rack, self.emit, until_deadline=known)
        start = await policy.call(
            self.client.start_login,
            loopback_uri=self.listener.uri if self.listener is not None else None,
            device_name=self.flow.device.device_name,
            on_retry=self._start_retries,
        )
        self.sign_in = await self.check_sign_in(start)
        await self.keep_pending(start)
        self.emit(GatewayReachable(self.rack, self.client.base_url, start.loopback))
        if self.flow.on_start is not None:
            await self.flow.on_start(start)
        return start

    async def check_sign_in(self, start: LoginStart) -> SignInCheck:
        """Where the sign-in returns to (``rgw.login.returns``): refused here, before anything is shown."""
        return await check_sign_in(
            self.rack,
            start.auth_url,
            gateway=self.client.base_url,
            others=self.flow.other_gateways,
            remembered=lambda: self.flow.remembered_return(self.rack),
            accept=self.options.accept_return,
        )

    async def race(self, services: anyio.abc.TaskGroup) -> Session | RgwError:
        """Browser, callback, poller, paste and MFA at once; ``decide`` picks the outcome."""
        start = self.start
        assert start is not None
        self.poller = LoginPoller(
            self.client,
            start,
            self.flow.device,
            rack=self.rack,
            emit=self.emit,
            policy=self.flow.policy,
            wake=self.wake,
            pace=self.options.pace,
            long_poll=self.options.long_poll,
            # A listener was offered and not taken: the gateway has no extensions, so no long polls.
            first_wait=self.options.pace if self.listener is not None and not start.loopback else 0.0,
            # A resumed login's gateway answered already: hold the first poll while it stays there.
            seen_stage=self.resumed_at.stage if self.resumed_at is not None else None,
        )
        # Register the state before the browser can possibly reach the listener.
        waiter = await self.expect_callback(start)
        async with anyio.create_task_group() as race:
            self._racers = race
            self._race = race.cancel_scope
            if waiter is not None:
                self._waiter = waiter
                race.start_soon(self.serve_callback, waiter)
            self.show_sign_in(start, services)
            # A listener offered and not taken: a gateway without our extensions, which reports no stage.
            self._stages = False if self.listener is not None and not start.loopback else None
            if self.flow.mfa is not None and self.flow.mfa.given_code and not start.loopback:
                self._given = self.flow.mfa.codes(self.client, start, given=True)
            mfa = await self.mfa_expected(start)
            if self.resumed_at is not None and self.resumed_at.stage == "mfa":
                self._said.update(("waiting", "oauth"))  # LoginResumed said the browser part is done
            self.say_once(
                "waiting", Waiting(self.rack, "browser", mfa, self.flow.mfa.method if self.flow.mfa else "totp")
            )
            race.start_soon(self.remind)
            if self.flow.paste is not None:
                race.start_soon(self.read_pasted_url, self.flow.paste)
            if self.resumed_at is not None and self.resumed_at.stage is not None:
                await self.on_pending(self.resumed_at)  # the MFA prompt, before any poll
            race.start_soon(self.poll)
        assert self._outcome is not None
        return self._outcome

    async def expect_callback(self, start: LoginStart) -> CallbackWaiterLike | None:
        """Have the listener wait for this login's browser, when the gateway will send it there.

        A state another login of the command (a multi-rack login shares one listener) already waits
        on is this rack's gateway's fault, or a hostile one's: the browser's answer could not be told
        apart, so this rack fails (its pending record deleted) and the other goes on.
        """
        if self.listener is None:
            return None
        if self.resumed is not None:
            # Taken up from an interrupted login: its gateway sends the browser to that login's
            # listener, which this one is when it could take its port; else the poller alone
            # finishes it.  Enter opens the browser.
            old = self.resumed.listener
            if old is None or not self.listener.serves(old):
                return None
        elif not start.loopback:
            return None
        try:
            waiter = self.listener.expect(start.state, self.rack)
        except ValueError as exc:
            from rgw.login.listener import StateTaken

            await self.end_pending()
            other = exc.rack if isinstance(exc, StateTaken) else "another rack"
            raise GatewayError(
                f"the gateway of rack {self.rack} handed out the login state that rack {other}'s login already "
                f"waits on; {self.rack}'s login is refused (the browser's answer could not be told apart)",
                hint=f"A gateway never repeats another's login state: check {self.rack}'s URL "
                "(rack-gateway racks) and tell its administrator.",
            ) from None
        self._expected = True
        return waiter

    def show_sign_in(self, start: LoginStart, services: anyio.abc.TaskGroup) -> None:
        """The sign-in URL goes to the walk's tab, a browser of its own, or the user's eyes."""
        # On the shared tab's walk, a rack whose gateway calls the listener back is a hop, others links;
        # a sign-in returning elsewhere than the rack's gateway is never walked to without a click.
        check = self.sign_in
        returns = self._waiter is not None and self.listener is self.flow.listener and not check.elsewhere
        if self.flow.walk is not None:
            self.flow.walk.offer(
                self.rack,
                auth_url=start.auth_url,
                state=start.state,
                hop=returns,
                returns_to=check.returns_to,
                elsewhere=check.elsewhere,
            )
        openable = self.options.open_browser and can_open(self.flow.browser)
        if check.elsewhere:
            if self.flow.walk_opens_browser and self.resumed is None:
                then = "walk"
            elif openable and check.first_use and self.resumed is None:
                then = "enter" if self.flow.paste is not None else "url"
            else:
                then = "shown"
            there, gateway = origin_host(check.returns_to or ""), origin_host(self.client.base_url)
            self.emit(SignInElsewhere(self.rack, start.auth_url, there, gateway, check.trust, then))
            if then != "shown":
                self._mfa_in_browser = False
                return
        if self.resumed is not None:
            pass  # LoginResumed showed the URL; the browser opens again only when the user asks
        elif self.flow.walk_opens_browser:
            # MFA on the gateway's page in the tab: a code typed in the terminal instead would
            # leave the tab on that page, and the walk could not go on to the next rack.
            self._mfa_in_browser = returns
            self.emit(WalkQueued(self.rack, start.auth_url, returns))
        elif openable:
            # The URL is shown before the launch, so a user on a remote machine can copy it.
            self.emit(BrowserOpening(self.rack, start.auth_url))
            # Not part of the race: a browser on its way to the listener is not cut off when
            # the poller wins (it ends with the listener, after the linger).
            services.start_soon(self.open_browser)
        else:
            reason = "--no-browser" if not self.options.open_browser else "no browser on this machine"
            self.emit(BrowserUnavailable(self.rack, start.auth_url, reason))

    async def mfa_expected(self, start: LoginStart) -> str:
        """What the waiting line says of MFA (``Waiting.mfa``): nothing unless rgw knows the account has it.

        A gateway with our extensions (it took the listener) reports the MFA stage, and its prompt says
        so then.  Known: ``--mfa-method``/``--mfa-code``, or the session this login replaces verified MFA.
        """
        solver = self.flow.mfa
        if solver is None or start.loopback or self._mfa_in_browser:
            return ""
        if not (solver.expects_mfa or await self.flow.verified_mfa_before(self.rack)):
            return ""
        if self._given is not None:
            return "given"
        return "terminal" if self.flow.paste is not None else "browser"

    # -- the contenders ------------------------------------------------------------------------

    async def poll(self) -> None:
        assert self.poller is not None
        self._polling_since = anyio.current_time()
        try:
            session = await self.poller.poll_until_complete(self.on_pending)
        except RgwError as exc:
            self.decide(exc)
            return
        self.say_once("oauth", OAuthSucceeded(self.rack))
        self.decide(session)

    async def on_pending(self, pending: LoginPending) -> None:
        self._stages = pending.stage is not None
        stage = pending.stage or "browser"
        if stage != "mfa":
            self.say_once("waiting", Waiting(self.rack, stage))
            if pending.stage is None and self._given is not None:
                await self.send_given_code()
            return
        self.say_once("oauth", OAuthSucceeded(self.rack))
        if "mfa" in self._said:
            return
        self.say_once("mfa", MfaPrompt(self.rack, pending.mfa_methods))
        if self.flow.mfa is None or self._mfa_in_browser:
            self.emit(Waiting(self.rack, "mfa"))
        elif self._racers is not None:
            self._paste_scope.cancel()  # the prompt reads the terminal from now on
            self._racers.start_soon(self.ask_for_mfa, pending.mfa_methods)

    async def ask_for_mfa(self, methods: tuple[str, ...]) -> None:
        assert self.flow.mfa is not None
        assert self.start is not None
        try:
            await self.flow.mfa.solve(self.client, self.start, methods)
        except RgwError as exc:
            self.decide(exc)
            return
        # Verified from the terminal: the browser stays on its MFA page, no redirect will reach
        # the listener, so there is nothing to linger for.
        self._waiter = None
        self.wake.set()

    async def send_given_code(self) -> None:
        """``--mfa-code`` to a gateway that does not report its stage, after a poll answered pending.

        Sent after each poll until the gateway takes it (or refuses it: the login fails) or it can
        no longer be valid.  The user chose the terminal: a send that lands between the gateway's
        callback and the browser's next step may cost the browser's MFA page, never the login.
        """
        assert self._given is not None
        if anyio.current_time() - self._polling_since > self.options.given_code_for:
            self._given = None
            self.emit(MfaCodeUnused(self.rack, self.options.given_code_for))
            return
        if await self._given.send() == "verified":
            self._given = None
            self.mfa_verified()

    async def send_typed_code(self, code: str) -> None:
        """A code typed while waiting: to ``/auth/cli/mfa`` of a gateway that does not report its stage.

        Not while it is unknown whether the gateway reports the stage (``--no-loopback``, before the
        first poll answer), nor to one that does (its prompt comes with the MFA stage).  The answer is
        said; a code that came too early is not resent by itself (a resend could land in the window
        where it would take the authorization-code exchange from the browser).
        """
        assert self.start is not None
        assert self.flow.mfa is not None
        if self._stages is not False:
            self.emit(MfaCodeEarly(self.rack))
            return
        if self._typed is None:
            self._typed = self.flow.mfa.codes(self.client, self.start, given=False)
        try:
            answer = await self._typed.send(code)
        except RgwError as exc:
            self.decide(exc)
            return
        if answer == "verified":
            self.mfa_verified()
        elif answer == "incomplete":
            self.emit(MfaCodeEarly(self.rack))

    def mfa_verified(self) -> None:
        """The gateway took a code (so the sign-in was done): say so and poll at once."""
        self.say_once("oauth", OAuthSucceeded(self.rack))
        self.emit(MfaVerified(self.rack))
        self.wake.set()

    async def serve_callback(self, waiter: CallbackWaiterLike) -> None:
        result = await waiter.wait()
        self.emit(CallbackReceived(self.rack, result.ok, "loopback"))
        self.wake.set()  # ok or not, the gateway's answer decides (a forged "error" aborts nothing)

    async def read_pasted_url(self, paste: PasteSource) -> None:
        """Lines typed while waiting: Enter opens the browser again; a pasted callback URL wakes the
        poller; an MFA code goes to the gateway (``send_typed_code``)."""
        start = self.start
        assert start is not None
        with self._paste_scope:
            while (line := await paste.read_line()) is not None:
                if not line.strip():
                    if self.options.open_browser and can_open(self.flow.browser) and self._racers is not None:
                        self.emit(BrowserOpening(self.rack, start.auth_url))
                        self._racers.start_soon(self.open_browser)
                    continue
                code = typed_code(line) if self.flow.mfa is not None and not self._mfa_in_browser else None
                if code is not None:
                    await self.send_typed_code(code)
                    continue
                pasted = paste_result(line, start.state)
                if pasted.ok is None:
                    reason = pasted.reason or "not this login's URL"
                    if self.flow.mfa is not None and self._stages is False and "state" not in line:
                        reason = (
                            "that is neither an MFA code (6 digits, a backup code) nor the address the browser ended on"
                        )
                    self.emit(PasteIgnored(self.rack, reason))
                    continue
                self.emit(CallbackReceived(self.rack, pasted.ok, "paste"))
                self.wake.set()  # the gateway's answer decides

    async def remind(self) -> None:
        """Still pending after a while: say why that may be, and how to retry or give up."""
        started = anyio.current_time()
        delay = self.options.remind_after
        while delay > 0:
            await anyio.sleep_until(started + delay)
            if "mfa" not in self._said:  # the MFA prompt is the user's next step, not a mystery
                self.emit(StillWaiting(self.rack, delay, can_reopen=self.flow.paste is not None))
            delay *= 3

    async def open_browser(self) -> None:
        start = self.start
        assert start is not None
        self._browser_opened = True  # a browser on this machine may hit the listener
        try:
            opened = await self.flow.browser.open(start.auth_url)
        except Exception:  # a broken browser never breaks the login: the URL is shown
            opened = False
        self._browser_opened = opened
        if self.session is not None:
            return  # the login finished while the browser was still starting
        if opened:
            self.emit(BrowserOpened(self.rack))
        else:
            self.emit(BrowserUnavailable(self.rack, start.auth_url, "no browser could be opened", url_shown=True))

    async def revoke_replaced(self, token: str) -> None:
        """Revoke the session the new one replaced (same gateway only); best effort, never fatal."""
        with anyio.move_on_after(REVOKE_PATIENCE):
            try:
                await self.client.revoke(token)
            except RgwError:
                return  # already invalid, or the gateway is busy: it expires on its own
            self.emit(ReplacedSessionRevoked(self.rack))

    async def linger(self) -> None:
        """Keep the listener up a moment for a browser redirect that is on its way.

        The gateway wakes the poller and redirects the browser at the same instant, after a good
        login and after one it failed; closing the listener at once would show the user a
        "connection refused" page instead of the result.
        """
        waiter = self._waiter
        if self.listener is None or waiter is None or not self._browser_opened:
            return
        if self.listener is self.flow.listener:
            return  # shared by many logins, it stays up after this one (the coordinator sees to the end)
        with anyio.move_on_after(self.options.linger):
            await waiter.wait()
            await waiter.wait_served()
