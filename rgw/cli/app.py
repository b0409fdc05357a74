"""The application object on the click context: the run's options, streams and collaborators.

``App`` holds what the command line and the environment gave (``Options``: ``--rack``,
``--api-token``, ``--mfa-*``, ``--timeout``, ``--config``; the environment; the streams) and builds,
once each and on first use, the collaborators a command needs: the ``ConfigStore``, gateway clients
(paced by the shared request budget, retried within the command's deadline, with the terminal's
step-up MFA), the one reader of the terminal (pasted URLs and MFA codes), and the ``Target`` a command
goes to, which ``rgw.targets`` decides.  Tests and the demo hand in their own collaborators (browser,
prompter, step-up, security keys).  ``connect`` is the one place a 401 becomes the seed's session error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rgw import __version__, trace
from rgw.config import ConfigData, ConfigStore, default_config_dir
from rgw.errors import AuthenticationError, MfaError, MfaRequired, RgwError, SessionNotVerified
from rgw.models import LoginRequest, parse_time
from rgw.targets import Selection, Target, read_command_target
from rgw.text import printable
from rgw.urls import check_link

if TYPE_CHECKING:
    from collections.abc import Callable

    from rgw.cli.terminal import TerminalLines
    from rgw.cli.verbose import VerboseHandler
    from rgw.client import GatewayClient, StepUpFactory
    from rgw.client.budget import Budgets
    from rgw.login.browser import BrowserLauncher
    from rgw.login.events import EventSink
    from rgw.login.flow import PasteSource
    from rgw.login.ledger import MfaLedger
    from rgw.login.mfa import LoginMfa, MfaSettings, Prompter
    from rgw.retry import RetryAttempt
    from rgw.wire import DeviceInfo

#: Seconds a command that talks to a gateway keeps retrying through a flaky link (``--timeout``).
DEFAULT_COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class Options:
    """What the command line gave: the global options and ``--timeout`` (None: not given)."""

    #: ``--config``; None = ``GATEWAY_CLI_CONFIG_DIR``, then ``~/.config/rack-gateway``.
    config_dir: Path | None = None
    rack: str | None = None
    api_token: str | None = None
    #: ``--mfa-method`` and ``--mfa-code`` (login and step-up; API tokens never use them).
    mfa_method: str | None = None
    mfa_code: str | None = None
    #: ``--timeout`` of a command that talks to a gateway: every retry ends within it.
    timeout: float = DEFAULT_COMMAND_TIMEOUT


@dataclass
class App:
    #: This run's options.  The parser hands each option it reads to ``given``, which replaces the
    #: record (the global options come anywhere on the line: a later one wins).
    options: Options = field(default_factory=Options)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    #: Whether stdin is a terminal we may read pasted URLs and MFA codes from; None = look.
    interactive: bool | None = None
    # Collaborators handed in (tests, the demo); None = the real one, built on first use below.
    #: The browser launcher; None = the system browser.
    browser: BrowserLauncher | None = None
    #: Where MFA questions go; None = the terminal, or no prompting without one (``rgw.cli.mfa``).
    prompter: Prompter | None = None
    #: Step-up MFA; None = the prompter's (``rgw.cli.mfa``).
    step_up: StepUpFactory | None = None
    #: Security keys (tests: software authenticators); None = USB keys found by fido2.
    webauthn_devices: Sequence[Any] | None = None
    #: Credentials this run has sent or holds: ``--verbose`` never prints them.
    secrets: set[str] = field(default_factory=set)
    # Built once, on first use (by the methods below).
    _store: ConfigStore | None = field(default=None, repr=False)
    _budgets: Budgets | None = field(default=None, repr=False)
    _terminal: TerminalLines | None = field(default=None, repr=False)
    _prompter: Prompter | None = field(default=None, repr=False)
    _verbose: VerboseHandler | None = field(default=None, repr=False)
    #: While a live block is drawn on stderr: the writer that puts a line above it (``lines_above``).
    _above: Callable[[str], None] | None = field(default=None, repr=False)
    _link_notices: set[str] = field(default_factory=set, repr=False)

    # -- options ------------------------------------------------------------------------------

    def given(self, **values: Any) -> None:
        """Options the parser read: a new ``Options`` record (a new ``--config`` drops the store)."""
        self.options = dataclasses.replace(self.options, **values)
        if "config_dir" in values:
            self._store = self._budgets = None

    @property
    def config_dir(self) -> Path:
        given = self.options.config_dir
        return given.expanduser() if given is not None else default_config_dir(self.environ)

    @property
    def command_timeout(self) -> float:
        return self.options.timeout

    @property
    def selection(self) -> Selection:
        return Selection(rack=self.options.rack, api_token=self.options.api_token, environ=self.environ)

    def known_secrets(self) -> set[str]:
        """Every credential of this run: sent sessions, API tokens (option, environment), an MFA code."""
        options = self.options
        found = {*self.secrets, options.api_token, options.mfa_code, self.environ.get("RACK_GATEWAY_API_TOKEN")}
        return {s.strip() for s in found if s and s.strip()}

    # -- collaborators, each built once ---------------------------------------------------------

    @property
    def store(self) -> ConfigStore:
        if self._store is None:
            self._store = ConfigStore(self.config_dir, on_warning=self.note)
            trace.debug("config: %s", self._store.path)
        return self._store

    def is_interactive(self) -> bool:
        """As handed in, else whether stdin and stderr are both terminals."""
        if self.interactive is not None:
            return self.interactive
        return _isatty(self.stdin) and _isatty(self.err)

    def terminal(self) -> TerminalLines:
        """The one reader of the terminal: the paste reader and the MFA prompt take lines from it,
        so nothing one of them has read ahead is lost to the other."""
        if self._terminal is None:
            from rgw.cli.terminal import TerminalLines

            self._terminal = TerminalLines(self.stdin)
        return self._terminal

    def paste_source(self) -> PasteSource | None:
        """On a terminal, lines the user pastes (the URL the browser ended on); else None."""
        return self.terminal() if self.is_interactive() else None

    @property
    def mfa_prompter(self) -> Prompter:
        """The prompter handed in, else the terminal's (one per run), else one that never asks."""
        if self._prompter is None:
            from rgw.cli.mfa import NoTerminalPrompter, TerminalPrompter

            prompter = self.prompter
            if prompter is None:
                prompter = TerminalPrompter(self.terminal(), self.err) if self.is_interactive() else None
            self._prompter = prompter or NoTerminalPrompter(self.err)
        return self._prompter

    def mfa_settings(self) -> MfaSettings:
        from rgw.login.mfa import MfaSettings

        options = self.options
        return MfaSettings(method=options.mfa_method, code=options.mfa_code, devices=self.webauthn_devices)

    def login_solver(self, emit: EventSink, *, name_racks: bool = False) -> Callable[[str], LoginMfa]:
        """The login's MFA: the terminal (or ``--mfa-code``) answers; questions name their rack."""
        from rgw.cli.mfa import login_solver

        return login_solver(self.mfa_prompter, self.mfa_settings(), self.mfa_ledger, emit, name_racks=name_racks)

    def start_verbose(self) -> bool:
        """``-v``: the library's debug log on stderr (``rgw.cli.verbose``); False when it is on already."""
        if self._verbose is not None:
            return False
        from rgw.cli.verbose import start_verbose

        self._verbose = start_verbose(self.err, self.known_secrets)
        return True

    def stop_verbose(self) -> None:
        handler, self._verbose = self._verbose, None
        if handler is not None:
            from rgw.cli.verbose import stop_verbose

            stop_verbose(handler)

    @contextlib.contextmanager
    def lines_above(self, write: Callable[[str], None] | None) -> Iterator[None]:
        """While a live block is drawn on stderr, every line for stderr (notices, ``-v``) goes through
        ``write``, which puts it above the block (a line written under it would be erased by the next
        redraw).  None: lines go to stderr as they are."""
        if write is None:
            yield
            return
        self._above = write
        if self._verbose is not None:
            self._verbose.write = write
        try:
            yield
        finally:
            self._above = None
            if self._verbose is not None:
                self._verbose.write = None

    def live_terminal(self, stream: TextIO) -> bool:
        """A terminal that takes cursor movement: a TTY whose ``TERM`` is not ``dumb``."""
        return _isatty(stream) and self.environ.get("TERM", "") != "dumb"

    def use_color(self, stream: TextIO) -> bool:
        """Colour only on a live terminal, and never with ``NO_COLOR`` set (https://no-color.org)."""
        return self.live_terminal(stream) and "NO_COLOR" not in self.environ

    def columns(self, stream: TextIO) -> int:
        """The width a table on ``stream`` fits: ``COLUMNS`` when set, else the terminal's, else 80
        (a pipe gets the table a terminal would; ``--json`` is the complete answer)."""
        given = self.environ.get("COLUMNS", "")
        if given.isdigit() and 20 <= int(given) <= 10_000:
            return int(given)
        if _isatty(stream):
            try:
                return max(20, os.get_terminal_size(stream.fileno()).columns)
            except (OSError, ValueError, AttributeError):
                pass
        return 80

    # -- output -----------------------------------------------------------------------------

    def echo(self, text: str = "") -> None:
        """A line (or lines) on stdout; anything that could drive the terminal is shown escaped."""
        print(safe_lines(text), file=self.out, flush=True)

    def echo_styled(self, line: str) -> None:
        """A line built by ``rgw.cli.style`` (cells already printable, colour codes ours): as it is."""
        print(line, file=self.out, flush=True)

    def note(self, text: str) -> None:
        """The same on stderr (progress, notices, warnings); above the live block while one is drawn."""
        if self._above is not None:
            self._above(safe_lines(text))
        else:
            print(safe_lines(text), file=self.err, flush=True)

    def echo_json(self, value: Any) -> None:
        print(json.dumps(value, indent=2, sort_keys=True), file=self.out, flush=True)

    # -- clients ------------------------------------------------------------------------------

    @property
    def budgets(self) -> Budgets:
        """The request budgets of this run's gateways, shared with other processes via the config dir."""
        if self._budgets is None:
            from rgw.client.budget import Budgets

            self._budgets = Budgets(self.config_dir, on_warning=self.note)
        return self._budgets

    def login_client(self, request: LoginRequest) -> GatewayClient:
        """A client for a login: paced by the shared budget, retried by the login orchestrator itself."""
        from rgw.client import GatewayClient

        self.link_notice(request.url, request.insecure_http)
        return GatewayClient(request.url, budget=self.budgets.for_url(request.url), insecure_http=request.insecure_http)

    def command_client(
        self,
        url: str,
        token: str | None,
        *,
        step_up: StepUpFactory | None = None,
        insecure_http: bool = False,
        announce_retries: bool = True,
    ) -> GatewayClient:
        """A client for one command: retries transient failures until the command's ``--timeout``.

        Entering it starts the command's one deadline (``rgw.deadline``), unless one is in force.
        Each retry is said on stderr, unless ``announce_retries`` is off (``status`` checks many
        racks at once and reports each one's outcome instead; ``-v`` still shows every retry).
        """
        from rgw.client import GatewayClient
        from rgw.retry import RetryPolicy

        self.link_notice(url, insecure_http)
        if token:
            self.secrets.add(token)
        return GatewayClient(
            url,
            token=token,
            insecure_http=insecure_http,
            budget=self.budgets.for_url(url),
            policy=RetryPolicy(),
            timeout=self.command_timeout,
            on_retry=self._note_retry if announce_retries else None,
            step_up=step_up,
        )

    def link_notice(self, url: str, insecure_http: bool) -> None:
        """Say once per gateway when its link is plain HTTP (Tailscale, or the user's opt-in)."""
        notice = check_link(url, insecure_http=insecure_http)
        if notice is not None and url not in self._link_notices:
            self._link_notices.add(url)
            self.note(notice)

    def _note_retry(self, attempt: RetryAttempt) -> None:
        from rgw.cli.style import retry_line
        from rgw.retry import describe_failure, failure_kind

        error = attempt.error
        self.note(retry_line(failure_kind(error), describe_failure(error), attempt.attempt, attempt.delay))

    def step_up_for(self, target: Target) -> StepUpFactory | None:
        """The step-up MFA of a session (the terminal's, or ``--mfa-code``); API tokens never do MFA."""
        if target.api_token:
            return None
        if self.step_up is not None:
            return self.step_up
        from rgw.cli.mfa import step_up_factory

        rack = target.rack
        verified, user = (rack.mfa_verified, rack.email) if rack else (None, None)
        return step_up_factory(
            self.mfa_prompter, self.mfa_settings, lambda url: self.mfa_ledger(url, user), session_verified=verified
        )

    def mfa_ledger(self, url: str, user: str | None = None) -> MfaLedger:
        """The MFA answers this machine sent to ``url``'s gateway for ``user`` (kept in the config directory)."""
        from rgw.login.ledger import MfaLedger

        return MfaLedger(url, self.config_dir, user=user, on_warning=self.budgets.warn)

    async def target(self) -> Target:
        target = await read_command_target(self.store, self.selection)
        self.secrets.add(target.token)
        return target

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[Target, GatewayClient]]:
        """Resolve the target and open a client; a 401 becomes the seed's session error."""
        target = await self.target()
        step_up = self.step_up_for(target)
        async with self.command_client(
            target.url, target.token, step_up=step_up, insecure_http=target.insecure_http
        ) as client:
            try:
                yield target, client
            except MfaRequired as exc:
                raise step_up_error(exc, target) from None
            except SessionNotVerified as exc:
                raise SessionNotVerified(
                    exc.message, hint=f"{target.login_hint()}   (and answer the MFA prompt), then run it again."
                ) from None
            except AuthenticationError as exc:
                error = session_error(await _detailed(exc, client), target)
                await self.remember_rejection(target, error)
                raise error from None
        await self.remember_expiry(target, client)

    async def remember_rejection(self, target: Target, error: AuthenticationError) -> None:
        """The gateway rejected a stored session: ``racks`` says so until the next login."""
        if target.api_token or target.rack is None:
            return
        from datetime import UTC, datetime

        name, token = target.rack.name, target.token
        reason = error.reason or "rejected"
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with contextlib.suppress(RgwError):  # the error the user sees matters more than this note
            await self.store.update(lambda data: data.mark_rejected(name, token, reason, at))

    async def remember_expiry(self, target: Target, client: GatewayClient) -> None:
        """Store the sliding expiry the gateway echoed (``X-Session-Expires-At``) for this session.

        The gateway slides it on every request; rewriting ``config.json`` for that would make every
        command a write.  It is stored when there was none (or none in range), or when it moved by more
        than an hour; one that is unparsable or out of range (``rgw.models.parse_time``) never is.
        """
        expires = client.session_expires_at
        if target.api_token or target.rack is None or not expires or not expiry_moved(target.rack.expires_at, expires):
            return
        name, token = target.rack.name, target.token

        def change(data: ConfigData) -> None:
            current = data.rack(name)
            if current is not None and current.token == token:
                data.raw["gateways"][name]["expires_at"] = expires

        await self.store.update(change)

    def device(self, data: ConfigData) -> DeviceInfo:
        """This machine as a login describes it; ``device_id`` is the stored machine id, or a new one.

        A new id is not stored here: a login that never completes must leave the config as it was
        (the login stores it together with the session).
        """
        import socket
        import uuid

        from rgw.client import default_device_os
        from rgw.wire import DeviceInfo

        return DeviceInfo(
            device_id=data.machine_id or str(uuid.uuid4()),
            device_name=(socket.gethostname() or "unknown")[:150],
            device_os=default_device_os(),
            client_version=f"rgw-python/{__version__}",
        )


#: How far the stored session expiry may lag the gateway's sliding one before it is written again.
EXPIRY_SLACK = timedelta(hours=1)


def expiry_moved(stored: str | None, echoed: str) -> bool:
    """Whether ``echoed`` is worth a write: in range, and the first such value or more than ``EXPIRY_SLACK`` away."""
    old, new = parse_time(stored), parse_time(echoed)
    if new is None:
        return False
    return old is None or abs(new - old) > EXPIRY_SLACK


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def safe_lines(text: str) -> str:
    """Each of our lines made printable: foreign text inside them can carry no escape sequence."""
    return "\n".join(printable(line) for line in text.split("\n"))


async def _detailed(exc: AuthenticationError, client: GatewayClient) -> AuthenticationError:
    """Rack-proxy 401s carry only a reason; the JSON API says why (revoked, MFA change, new secret)."""
    if exc.detail is not None:
        return exc
    try:
        await client.info()
    except AuthenticationError as detailed:
        if detailed.detail is not None and not isinstance(detailed, MfaRequired):
            return detailed
    except RgwError:
        pass
    return exc


def session_error(exc: AuthenticationError, target: Target) -> AuthenticationError:
    """Rewrite a 401 into the seed's form, naming the cause and the exact login command."""
    reason = (exc.reason or "").removeprefix("authentication failed: ")
    explanation = explain_reason(reason, exc.detail)
    hint = target.login_hint()
    if explanation:
        hint = f"{hint}\n({explanation})"
    message = "the gateway rejected the API token" if target.api_token else "session expired or invalid"
    return AuthenticationError(message, reason=reason, detail=exc.detail, hint=hint)


def explain_reason(reason: str, message: str | None) -> str:
    text = (message or "").lower()
    if "mfa" in text or "multi-factor" in text:
        return "MFA enforcement changed for your account; you may need to enroll in MFA"
    if "secret" in text:
        return "the gateway restarted with a new secret: all sessions were invalidated"
    if reason == "session revoked":
        return "an administrator revoked your session"
    if reason == "session expired":
        return "the session expired" + (" after a period of inactivity" if "inactiv" in text else "")
    if reason == "session not found":
        return "the gateway does not know this session (it may have restarted with a new secret)"
    if reason == "user locked":
        return "your account is locked; contact your administrator"
    if reason.startswith("invalid API token"):
        return reason
    return message or reason


def step_up_error(exc: MfaRequired, target: Target) -> RgwError:
    if exc.level == "enrollment":
        return MfaError(
            "MFA enrollment required: your account must enroll in MFA before this operation",
            hint="Enroll in the gateway's web UI, then run the command again.",
        )
    if target.api_token:
        return MfaError(
            f"the gateway requires MFA for this operation: {exc.message}",
            hint="API tokens cannot answer MFA; use a token whose role does not need it.",
        )
    return MfaError(
        f"MFA verification required for this operation: {exc.message}",
        hint="Run it in a terminal to be prompted, or pass --mfa-code CODE.",
    )
