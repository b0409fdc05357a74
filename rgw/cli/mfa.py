"""MFA on the command line: terminal prompts, the login solver and step-up provider, ``test-auth mfa``.

The logic lives in ``rgw.login.mfa``; this module only decides where questions go.  On a terminal
(stdin and stderr both TTYs) prompts are printed to stderr and codes are read with echo off, through a
reader that a cancellation (the browser finished MFA first) interrupts at once, echo restored.
Without a terminal nothing is asked: a code must come from ``--mfa-code``, otherwise MFA fails at
once with a hint instead of waiting for input that cannot come.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import anyio

from rgw.errors import MfaError, PermissionDenied
from rgw.models import parse_time

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rgw.cli.app import App
    from rgw.cli.terminal import TerminalLines
    from rgw.client import GatewayClient
    from rgw.login.events import EventSink
    from rgw.login.mfa import LoginMfa, MfaSettings, Prompter, StepUpMfa

#: ``test-auth`` topics and the method types each shows.
FAMILIES = {"mfa": None, "otp": ("totp", "otp", "yubikey", "yubikey_otp"), "webauthn": ("webauthn",)}


class TerminalPrompter:
    """Prompts on stderr, answers from the terminal; one question at a time."""

    def __init__(self, stdin: TextIO, err: TextIO) -> None:
        self.stdin = stdin
        self.err = err
        self._lines: TerminalLines | None = None
        self._lock: anyio.Lock | None = None

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        from rgw.cli.terminal import TerminalLines, prompt_line

        if self._lock is None:  # made on first use: most commands never ask
            self._lock = anyio.Lock()
            self._lines = TerminalLines(self.stdin)
        assert self._lines is not None
        async with self._lock:  # parallel rack logins must not interleave their questions
            return await prompt_line(self._lines, prompt, self.err, hidden=hidden)

    def notify(self, text: str) -> None:
        print(text, file=self.err, flush=True)


class NoTerminalPrompter:
    """No terminal: notices still go to stderr, questions are never asked."""

    def __init__(self, err: TextIO) -> None:
        self.err = err

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        return None

    def notify(self, text: str) -> None:
        print(text, file=self.err, flush=True)


def prompter_for(app: App) -> Prompter:
    """The app's prompter (tests hand one in), else the terminal's (one per run), else none."""
    if app.prompter is None and app.is_interactive():
        app.prompter = TerminalPrompter(sys.stdin, app.err)
    return app.prompter or NoTerminalPrompter(app.err)


def mfa_settings(app: App) -> MfaSettings:
    from rgw.login.mfa import MfaSettings

    return MfaSettings(method=app.mfa_method, code=app.mfa_code, devices=app.webauthn_devices)


class RackPrompter:
    """Prefixes every question and notice with its rack, when many racks log in at once."""

    def __init__(self, inner: Prompter, rack: str) -> None:
        self.inner = inner
        self.prefix = f"[{rack}] "

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        return await self.inner.ask(self.prefix + prompt, hidden)

    def notify(self, text: str) -> None:
        self.inner.notify(self.prefix + text)


def login_solver(app: App, emit: EventSink, *, name_racks: bool = False) -> Callable[[str], LoginMfa]:
    """The coordinator's MFA factory: rack name -> that rack login's terminal MFA solver."""
    from rgw.login.mfa import LoginMfa

    prompter = prompter_for(app)
    settings = mfa_settings(app)

    def build(rack: str) -> LoginMfa:
        asker = RackPrompter(prompter, rack) if name_racks else prompter
        return LoginMfa(rack, prompter=asker, settings=settings, emit=emit, ledger=app.mfa_ledger)

    return build


def step_up_factory(
    app: App, *, session_verified: bool | None = None, user: str | None = None
) -> Callable[[GatewayClient], DeferredStepUp]:
    """Builds a client's step-up provider: the terminal (or ``--mfa-code``) answers step-up MFA."""
    prompter = prompter_for(app)

    def build(client: GatewayClient) -> DeferredStepUp:
        def dialog() -> StepUpMfa:
            from rgw.login.mfa import StepUpMfa

            ledger = app.mfa_ledger(client.base_url, user)
            settings = mfa_settings(app)
            return StepUpMfa(
                client, prompter=prompter, settings=settings, ledger=ledger, session_verified=session_verified
            )

        return DeferredStepUp(dialog)

    return build


class DeferredStepUp:
    """A step-up provider that loads the MFA dialog (``rgw.login.mfa``) only when a request needs
    MFA: most commands never do, and ``test-auth`` should not pay for importing it."""

    def __init__(self, make: Callable[[], StepUpMfa]) -> None:
        self._make = make
        self._provider: StepUpMfa | None = None

    def provider(self) -> StepUpMfa:
        """The dialog, made now if no request needed it yet."""
        if self._provider is None:
            self._provider = self._make()
        return self._provider

    async def answer(self, level: str, rejection: str | None) -> Mapping[str, str]:
        return await self.provider().answer(level, rejection)

    async def accepted(self) -> None:
        if self._provider is not None:
            await self._provider.accepted()


# -- test-auth mfa | otp | webauthn ----------------------------------------------------------------


def _when(value: object) -> str:
    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else "never"


def _yes(value: object) -> str:
    return "yes" if value is True else "no"


async def show_mfa(app: App, topic: str, as_json: bool) -> None:
    """``test-auth mfa|otp|webauthn``: enrollment, methods, last verification and step-up window."""
    async with app.connect() as (target, client):
        try:
            status = await client.mfa_status()
        except PermissionDenied as exc:
            if not target.api_token:
                raise
            raise MfaError(
                "MFA status belongs to a user session; API tokens have no MFA",
                hint=f"Run it without --api-token/RACK_GATEWAY_API_TOKEN after: rack-gateway login "
                f"{target.rack_name or '<rack>'} {target.url}",
            ) from exc
    kinds = FAMILIES[topic]
    raw = status.get("methods")
    methods = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
    if kinds is not None:
        methods = [m for m in methods if str(m.get("type", "")).lower() in kinds]
    used = [t for t in (parse_time(m.get("last_used_at")) for m in methods) if t is not None]
    last = max(used).strftime("%Y-%m-%dT%H:%M:%SZ") if used else None
    window = status.get("recent_step_up_expires_at")
    summary = {
        "enrolled": status.get("enrolled") is True if kinds is None else bool(methods),
        "required": status.get("required") is True,
        "methods": methods,
        "preferred_method": status.get("preferred_method"),
        "last_verified_at": last,
        "recent_step_up_expires_at": window if isinstance(window, str) else None,
    }
    if as_json:
        app.echo_json(summary)
        return
    label = {"mfa": "MFA", "otp": "TOTP/OTP", "webauthn": "WebAuthn"}[topic]
    app.echo(f"{label} enrolled: {_yes(summary['enrolled'])}")
    app.echo(f"MFA required: {_yes(summary['required'])}")
    if topic == "mfa":
        app.echo(f"Preferred method: {summary['preferred_method'] or 'none'}")
    app.echo(f"Last verification: {_when(last)}")
    if summary["recent_step_up_expires_at"]:
        app.echo(f"Step-up window: open until {_when(window)}")
    else:
        app.echo("Step-up window: closed (protected commands will ask for MFA)")
    if not methods:
        app.echo("Methods: none")
        return
    from rgw.cli.style import table

    rows = [
        (
            str(m.get("id", "-")),
            str(m.get("type", "-")),
            str(m.get("label") or "-"),
            _yes(m.get("cli_capable")),
            _when(m.get("last_used_at")),
        )
        for m in methods
    ]
    app.echo("Methods:")
    for line in table(rows, ("ID", "TYPE", "LABEL", "CLI", "LAST USED")):
        app.echo("  " + line)
