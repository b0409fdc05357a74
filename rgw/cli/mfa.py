"""MFA on the command line: where questions go, the login solver and the step-up provider.

The logic lives in ``rgw.login.mfa``; this module only decides where questions go.  On a terminal
(stdin and stderr both TTYs) prompts are printed to stderr and codes are read with echo off from
the run's one terminal reader (``App.terminal``), which a cancellation (the browser finished MFA
first) interrupts at once, echo restored.  Without a terminal nothing is asked: a code must come
from ``--mfa-code``, otherwise MFA fails at once with a hint instead of waiting for input that
cannot come.  The ``App`` builds these (``App.mfa_prompter``, ``App.login_solver``,
``App.step_up_for``); this module does not know it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import anyio

from rgw.text import printable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rgw.cli.terminal import TerminalLines
    from rgw.client import GatewayClient
    from rgw.login.events import EventSink
    from rgw.login.ledger import MfaLedger
    from rgw.login.mfa import LoginMfa, MfaSettings, Prompter, StepUpMfa


class TerminalPrompter:
    """Prompts on stderr, answers from the run's terminal reader; one question at a time."""

    def __init__(self, lines: TerminalLines, err: TextIO) -> None:
        self.lines = lines
        self.err = err
        self._lock: anyio.Lock | None = None

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        from rgw.cli.terminal import prompt_line

        if self._lock is None:  # made on first use: most commands never ask
            self._lock = anyio.Lock()
        async with self._lock:  # parallel rack logins must not interleave their questions
            return await prompt_line(self.lines, printable(prompt), self.err, hidden=hidden)

    def notify(self, text: str) -> None:
        print(printable(text), file=self.err, flush=True)  # one line: a notice cannot forge another


class NoTerminalPrompter:
    """No terminal: notices still go to stderr, questions are never asked."""

    def __init__(self, err: TextIO) -> None:
        self.err = err

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        return None

    def notify(self, text: str) -> None:
        print(printable(text), file=self.err, flush=True)  # one line: a notice cannot forge another


class RackPrompter:
    """Prefixes every question and notice with its rack, when many racks log in at once.

    The name may come from a config file another tool wrote: it is shown printable, like every
    other line with a rack name in it.
    """

    def __init__(self, inner: Prompter, rack: str) -> None:
        self.inner = inner
        self.prefix = f"[{printable(rack)}] "

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        return await self.inner.ask(self.prefix + prompt, hidden)

    def notify(self, text: str) -> None:
        self.inner.notify(self.prefix + text)


def login_solver(
    prompter: Prompter,
    settings: MfaSettings,
    ledger: Callable[[str], MfaLedger],
    emit: EventSink,
    *,
    name_racks: bool = False,
) -> Callable[[str], LoginMfa]:
    """The coordinator's MFA factory: rack name -> that rack login's MFA solver."""
    from rgw.login.mfa import LoginMfa

    def build(rack: str) -> LoginMfa:
        asker = RackPrompter(prompter, rack) if name_racks else prompter
        # With many racks a code given with --mfa-code is not sent to a deployed gateway after each poll:
        # one code would go to several gateways (each refusal counts toward a lock-out there).
        return LoginMfa(rack, prompter=asker, settings=settings, emit=emit, ledger=ledger, one_rack=not name_racks)

    return build


def step_up_factory(
    prompter: Prompter,
    settings: Callable[[], MfaSettings],
    ledger: Callable[[str], MfaLedger],
    *,
    session_verified: bool | None = None,
) -> Callable[[GatewayClient], DeferredStepUp]:
    """Builds a client's step-up provider: ``prompter`` (or ``--mfa-code``) answers step-up MFA."""

    def build(client: GatewayClient) -> DeferredStepUp:
        def dialog() -> StepUpMfa:
            from rgw.login.mfa import StepUpMfa

            return StepUpMfa(
                client,
                prompter=prompter,
                settings=settings(),
                ledger=ledger(client.base_url),
                session_verified=session_verified,
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
