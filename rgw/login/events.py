"""Typed events the login orchestrator emits instead of printing.

The CLI renders them (``rgw.cli.render``); tests compare their sequence.  Every event names the rack
it belongs to, so one renderer can follow many parallel logins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rgw.retry import RetryAttempt


@dataclass(frozen=True)
class LoginEvent:
    rack: str


@dataclass(frozen=True)
class GatewayReachable(LoginEvent):
    """``/auth/cli/start`` answered: the gateway is reachable and a login state exists."""

    url: str
    loopback: bool


@dataclass(frozen=True)
class BrowserOpening(LoginEvent):
    """About to open the browser; ``auth_url`` is printed before the launch so it can be copied."""

    auth_url: str


@dataclass(frozen=True)
class BrowserOpened(LoginEvent):
    pass


@dataclass(frozen=True)
class BrowserUnavailable(LoginEvent):
    """No browser could be opened (or ``--no-browser``): the user opens ``auth_url`` by hand.

    ``url_shown``: the URL was printed already (with ``BrowserOpening``): do not print it twice.
    """

    auth_url: str
    reason: str
    url_shown: bool = False


@dataclass(frozen=True)
class Waiting(LoginEvent):
    """Waiting for the browser sign-in (``stage`` browser) or for MFA in the browser (``mfa``).

    ``mfa``: what rgw knows of MFA while the sign-in goes on at a gateway that does not report its
    stage: ``""`` nothing (the account may have MFA or not); else the account has MFA, and its code
    may be typed in the terminal or the browser (``terminal``), is sent from ``--mfa-code``
    (``given``), or goes in the browser (``browser``: no terminal).
    """

    stage: str
    mfa: str = ""
    #: ``--mfa-method`` (the code the waiting line asks for; ``totp`` when not given).
    method: str = "totp"


@dataclass(frozen=True)
class StillWaiting(LoginEvent):
    """The sign-in has taken ``elapsed`` seconds: say the likely causes, and how to retry or give up.

    A deployed gateway that rejected the sign-in in the browser (wrong email domain, consent
    cancelled) keeps answering "pending": only the user can tell.  ``can_reopen``: Enter opens the
    browser again (a terminal).
    """

    elapsed: float
    can_reopen: bool


@dataclass(frozen=True)
class PasteIgnored(LoginEvent):
    """A line typed or pasted while waiting was not this login's callback URL; ``reason`` says why."""

    reason: str


@dataclass(frozen=True)
class GatewayRetry(LoginEvent):
    """A transient failure; the next try comes after ``delay`` seconds.

    ``kind`` says what failed: ``unreachable`` (no answer at all), ``rate_limited`` (HTTP 429) or
    ``gateway_error`` (it answered, with a 5xx).  ``until_deadline``: a gateway that answered before
    (a stored rack) is tried until the login's deadline, so the user hears that Ctrl-C gives up.
    """

    attempt: int
    delay: float
    error: str
    kind: str = "unreachable"
    until_deadline: bool = False


@dataclass(frozen=True)
class CallbackReceived(LoginEvent):
    """The browser reached the loopback listener (or the user pasted the URL it ended on)."""

    ok: bool
    via: str  # "loopback" | "paste"


@dataclass(frozen=True)
class OAuthSucceeded(LoginEvent):
    pass


@dataclass(frozen=True)
class MfaPrompt(LoginEvent):
    """The gateway wants MFA before it issues the session."""

    methods: tuple[str, ...]


@dataclass(frozen=True)
class MfaVerified(LoginEvent):
    pass


@dataclass(frozen=True)
class MfaCodeRejected(LoginEvent):
    """The gateway refused a code; ``typed``: one typed while the login waited (a deployed gateway)."""

    message: str
    attempts_left: int
    typed: bool = False


@dataclass(frozen=True)
class MfaCodeEarly(LoginEvent):
    """A typed code came before the browser's sign-in ended (``session_incomplete``, or no poll
    answered yet): nothing was verified, and it is not resent by itself."""


@dataclass(frozen=True)
class MfaCodeUnused(LoginEvent):
    """``--mfa-code`` was not taken within ``seconds`` of polling (the sign-in did not finish in
    time): it is sent no more, MFA goes on in the browser."""

    seconds: float


@dataclass(frozen=True)
class LoggedIn(LoginEvent):
    email: str


@dataclass(frozen=True)
class ReplacedSessionRevoked(LoginEvent):
    """A re-login revoked, on the gateway, the session the new one replaced."""


@dataclass(frozen=True)
class LoginFailed(LoginEvent):
    """This rack's login ended without a session (others may go on)."""

    message: str


@dataclass(frozen=True)
class CoalescedWait(LoginEvent):
    """Another process is already logging in to this rack: we wait for its session.

    ``other_url``: it logs in to this rack at another gateway URL (its word): we wait for it to end,
    then log in ourselves.
    """

    pid: int | None
    auth_url: str | None
    other_url: str | None = None


@dataclass(frozen=True)
class LoginResumed(LoginEvent):
    """A login an earlier ``rack-gateway login`` started (and was interrupted in) is taken up again.

    ``finished``: the sign-in was completed in the browser meanwhile and its session redeemed;
    otherwise the login goes on waiting for it (``auth_url`` is where the user finishes it), at
    ``stage`` when the gateway says (``browser``, or ``mfa``: signed in with the browser, MFA still
    needed; None: a gateway without the extension).  ``started_at`` is wall-clock (epoch) seconds.
    ``can_reopen``: the browser is not opened again by itself, but Enter in the terminal opens it.
    """

    started_at: float
    finished: bool
    auth_url: str
    stage: str | None = None
    can_reopen: bool = False


@dataclass(frozen=True)
class ResumeDiscarded(LoginEvent):
    """The gateway no longer knows the pending login started at ``started_at``: a new one starts."""

    started_at: float


@dataclass(frozen=True)
class WalkOpening(LoginEvent):
    """A multi-rack login opens one browser tab, on the listener's page that walks through the racks.

    ``rack`` is empty: the event is the whole login's.  ``url`` is the page (printed before the launch).
    """

    url: str
    racks: int


@dataclass(frozen=True)
class WalkAvailable(LoginEvent):
    """No browser is opened (``--no-browser``), but the one-tab page is there to open by hand."""

    url: str
    racks: int


@dataclass(frozen=True)
class WalkQueued(LoginEvent):
    """The rack's sign-in is on the shared tab's walk; ``returns``: its gateway sends the tab back.

    A rack whose gateway does not (a deployed gateway) is signed in to with its link on the page.
    ``stalled``: the tab was sent to this rack's sign-in and has not come back (it may have stopped
    on the way): its link is offered on the page now, and its URL shown.
    """

    auth_url: str
    returns: bool
    stalled: bool = False


@dataclass(frozen=True)
class SignInElsewhere(LoginEvent):
    """The rack's sign-in returns to ``returns_to`` (a host), not to its own gateway ``gateway``.

    Legitimate (a gateway reached through a Tailscale address whose public DOMAIN differs) or not (a
    hostile gateway handing out another gateway's sign-in), so the browser is never sent there
    without the user's click.  ``trust``: ``first use`` (the host is remembered for the rack from now
    on, and a later change is refused), ``remembered``, or ``accepted`` (``--accept-redirect``, for a
    host that changed; remembered from now on).  ``then`` says how the user gets there: ``walk`` (its
    link on the one-tab page), ``enter`` (Enter opens the browser), ``url`` (open ``auth_url`` by
    hand), or ``shown`` (another line shows ``auth_url``: the browser opens for a host remembered or
    accepted, or cannot be opened).
    """

    auth_url: str
    returns_to: str
    gateway: str
    trust: str
    then: str


@dataclass(frozen=True)
class LoginStarted(LoginEvent):
    """A rack of a multi-rack login took one of the ``--parallel`` slots: its login begins now
    (until then it is queued)."""


@dataclass(frozen=True)
class WalkProgress(LoginEvent):
    """A rack of a multi-rack login finished: ``finished`` of ``total``, ``failed`` of them failed."""

    finished: int
    failed: int
    total: int


EventSink = Callable[[LoginEvent], None]


class RetryEvents:
    """A retry policy's ``on_retry`` that says each retry of a rack's login as a ``GatewayRetry``.

    Failures are numbered across tries until ``reset`` (the poller resets after each answer);
    ``last`` is the latest failure (what a deadline that cuts the next try short leaves to say).
    """

    def __init__(self, rack: str, emit: EventSink, *, until_deadline: bool = False) -> None:
        self.rack = rack
        self.emit = emit
        self.until_deadline = until_deadline
        self.failures = 0
        self.last: BaseException | None = None

    def reset(self) -> None:
        self.failures = 0

    def __call__(self, attempt: RetryAttempt) -> None:
        from rgw.retry import describe_failure, failure_kind

        self.failures += 1
        error = self.last = attempt.error
        self.emit(
            GatewayRetry(
                self.rack,
                self.failures,
                attempt.delay,
                describe_failure(error),
                failure_kind(error),
                self.until_deadline,
            )
        )


def discard(_event: LoginEvent) -> None:
    """An event sink that drops everything."""
