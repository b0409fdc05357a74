"""MFA from the terminal: one dialog, used at login and for step-up.

``MfaDialog`` is one verification: it picks the method (``--mfa-method``; else the gateway's
preferred one; else a security key when one is plugged in, then TOTP, then a backup code), asks
through a ``Prompter`` (or touches the key), and keeps the try limit, always below the gateway's
lock-out (5 failures in 5 minutes).  A code given up front (``--mfa-code``) is used exactly once;
without a terminal nothing is asked (``MfaError`` at once); a key that cannot be used falls back to
the next method.  The dialog never sends anything itself: its two submitters do.

- ``LoginMfa`` (the login orchestrator's ``MfaSolver``) submits to ``/auth/cli/mfa``: the dialog's
  answers when the gateway reports the MFA stage (our extension), else (``LoginCodes``, a deployed
  gateway) a code typed in the terminal while the login waits, or ``--mfa-code`` after each poll.
- ``StepUpMfa`` is the ``StepUpProvider`` of a client's step-up auth flow: it returns the inline
  MFA headers with which the flow sends the refused request again.

Nothing here prints: questions and notices go through the ``Prompter``, progress through login
events.  Codes are never put into messages or events.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import anyio

from rgw import aio
from rgw.client import GatewayClient
from rgw.client.stepup import LOCKOUT_HINT
from rgw.deadline import paused
from rgw.errors import (
    ENROL_HINT,
    GatewayError,
    LoginStateUnknown,
    MfaError,
    MfaFailed,
    MfaRejected,
    RgwError,
    SessionNotVerified,
)
from rgw.login.events import EventSink, MfaCodeRejected, MfaVerified, discard
from rgw.login.ledger import MfaLedger
from rgw.mfa_methods import MFA_METHODS as METHODS  # the methods the CLI can answer with
from rgw.models import LoginStart
from rgw.retry import RetryPolicy, unprocessed

#: Codes tried per verification.  The gateway locks MFA after 5 failures in 5 minutes: stay below.
MAX_TRIES = 3

PROMPTS = {"totp": "Enter TOTP code:", "backup_code": "Enter backup code:"}
TOUCH_PROMPT = "Touch your security key..."
STEP_UP_NOTICE = "Step-up MFA required for this operation."
NO_TERMINAL_HINT = "Pass --mfa-code CODE (a TOTP or backup code), or run the command in a terminal."
GIVEN_CODE_HINT = "Check the code (--mfa-code is used once, without prompting)."
_LABELS = {"totp": "TOTP", "webauthn": "security key", "backup_code": "backup code"}
#: Seconds after the login starts polling that a code given with ``--mfa-code`` is still sent: a TOTP
#: code is accepted for its 30 s step and the one either side, so after about a minute it cannot be valid.
GIVEN_CODE_LIFETIME = 60.0
_MODHEX = frozenset("cbdefghijklnrtuv")
_GROUPS = re.compile(r"[- ]")


def typed_code(line: str) -> str | None:
    """The MFA code a line typed in the terminal is, or None (a URL, a word, a typo).

    A TOTP code (6 digits, a space allowed in the middle), a Yubikey OTP (44 modhex characters) or a
    backup code (8 to 16 ASCII letters and digits with at least one digit, groups split by ``-`` or a
    space).  Anything else is never sent: a line taken for a code that is not one would count as a
    failed MFA attempt at the gateway.
    """
    text = line.strip()
    if not text or len(text) > 64 or not text.isascii():
        return None
    compact = text.replace(" ", "")
    if len(compact) == 6 and compact.isdigit():
        return compact
    if len(text) == 44 and set(text) <= _MODHEX:
        return text
    groups = _GROUPS.split(text)
    joined = "".join(groups)
    if all(g.isalnum() for g in groups) and 8 <= len(joined) <= 16 and any(c.isdigit() for c in joined):
        return text
    return None


#: Fetches a WebAuthn challenge: ``{"options": {"publicKey": ...}, "session_data": ...}``.
ChallengeSource = Callable[[], Awaitable[Mapping[str, Any]]]


class Prompter(Protocol):
    """Where MFA questions go: a terminal, or nothing (``ask`` answers None at once)."""

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        """One line typed by the user; None when nobody can answer (no terminal, end of input)."""
        ...

    def notify(self, text: str) -> None:
        """Tell the user something (``Touch your security key...``)."""
        ...


class NoPrompter:
    """No terminal and nowhere to say anything: every question is unanswerable."""

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        return None

    def notify(self, text: str) -> None:
        return None


@dataclass(frozen=True)
class MfaSettings:
    """What the user asked for on the command line, and how security keys are reached."""

    #: ``--mfa-method``: one of ``METHODS``; None = choose.
    method: str | None = None
    #: ``--mfa-code``: used once, without prompting.
    code: str | None = None
    #: Security keys to use (tests: ``[SoftAuthenticator()]``); None = every USB key fido2 finds.
    devices: Sequence[Any] | None = None
    max_tries: int = MAX_TRIES
    webauthn_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in METHODS:
            raise MfaError(f"unknown MFA method {self.method!r}", hint=f"Use one of: {', '.join(METHODS)}.")
        if not 1 <= self.max_tries < 5:
            raise ValueError("max_tries must stay below the gateway's lock-out of 5 failures")


@dataclass(frozen=True)
class Credential:
    """One answer: a code (TOTP or backup), or a security key's assertion for a challenge."""

    method: str
    code: str | None = None
    assertion: Mapping[str, Any] | None = None
    session_data: str | None = None

    def headers(self) -> dict[str, str]:
        """The inline MFA header that carries this answer on a retried request (step-up)."""
        if self.method == "webauthn":
            assert self.assertion is not None
            assert self.session_data is not None
            return {"X-MFA-WebAuthn": webauthn_header(self.assertion, self.session_data)}
        assert self.code is not None
        return {"X-Mfa-Totp": self.code}


def method_order(
    available: Sequence[str],
    *,
    requested: str | None = None,
    preferred: str | None = None,
    has_key: bool = False,
) -> list[str]:
    """The methods to try, in order: ``requested``; else ``preferred``, WebAuthn with a key, TOTP, backup code.

    ``available`` is what the gateway says the user has (empty: unknown, anything goes).  A
    requested method the user does not have is an ``MfaError``; an enrolled security key with no key
    present still comes last, so the user hears why it cannot be used.
    """
    known = [m for m in available if m in METHODS]

    def allowed(method: str) -> bool:
        return not known or method in known

    if requested is not None:
        if not allowed(requested):
            raise MfaError(
                f"--mfa-method {requested}: your account has no {_LABELS[requested]} (available: {', '.join(known)})",
                hint=f"Use --mfa-method {known[0]}, or leave the option out.",
            )
        return [requested]
    order: list[str] = []
    if preferred in METHODS and allowed(preferred):
        order.append(preferred)
    if has_key and allowed("webauthn"):
        order.append("webauthn")
    order += [m for m in ("totp", "backup_code", *known) if allowed(m)]
    return list(dict.fromkeys(order))


def needs_key_probe(available: Sequence[str], requested: str | None, preferred: str | None) -> bool:
    """Whether the order depends on a key being plugged in (only when nothing else decides)."""
    return requested is None and preferred not in METHODS and (not available or "webauthn" in available)


async def key_present(devices: Sequence[Any] | None) -> bool:
    """A security key is reachable now (injected devices, else a USB HID scan; fido2 imported here)."""
    if devices is not None:
        return bool(devices)

    def scan() -> bool:
        from rgw.login.webauthn import find_devices

        found = find_devices()
        for device in found:
            device.close()
        return bool(found)

    try:
        return await aio.call(scan)
    except MfaError:  # no fido2, no HID backend, no permission: no key as far as we can tell
        return False


def webauthn_header(assertion_response: Mapping[str, Any], session_data: str) -> str:
    """The ``X-MFA-WebAuthn`` value: base64 of JSON ``{assertion_response, session_data}``."""
    payload = json.dumps({"assertion_response": assertion_response, "session_data": session_data})
    return base64.b64encode(payload.encode()).decode("ascii")


def _sentence(text: str) -> str:
    """The gateway's text as a sentence start, without its closing full stop."""
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:]


def _kind(method: str) -> str:
    """The ledger's kinds: the gateway counts codes (TOTP and backup) and security keys apart."""
    return "webauthn" if method == "webauthn" else "code"


def _challenge(started: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    options = started.get("options")
    session_data = started.get("session_data")
    if not isinstance(options, Mapping) or not isinstance(session_data, str) or not session_data:
        raise MfaError(
            "The gateway sent an unusable security-key challenge",
            hint="Use another method: --mfa-method totp or --mfa-method backup_code.",
        )
    return options, session_data


class MfaDialog:
    """One verification from the terminal: the method, the questions, the try limit, the key.

    ``credential`` produces the next answer to submit; the submitter reports a refusal with
    ``rejected``, which counts a try and raises ``MfaFailed`` once the verification is over.
    """

    def __init__(
        self,
        *,
        prompter: Prompter,
        settings: MfaSettings,
        origin: str,
        available: Sequence[str] = (),
        preferred: str | None = None,
        on_rejected: Callable[[str, int], None] | None = None,
        no_terminal: str = "MFA verification required, but there is no terminal to enter a code",
        ledger: MfaLedger | None = None,
        pause_deadline: bool = False,
    ) -> None:
        self.prompter = prompter
        self.settings = settings
        #: The gateway's origin, which a security key signs for.
        self.origin = origin
        self.available = tuple(available)
        self.preferred = preferred
        self.on_rejected = on_rejected
        self.no_terminal = no_terminal
        #: Every answer sent to this gateway, by any process: none is sent that could lock the account.
        self.ledger = ledger
        #: Step-up: the command's deadline stops while the person answers (a login's keeps running).
        self.pause_deadline = pause_deadline
        self.tries_left = settings.max_tries
        self._order: list[str] | None = None
        self._index = 0
        self._method = "totp"

    async def _methods(self) -> list[str]:
        if self._order is None:
            has_key = False
            if needs_key_probe(self.available, self.settings.method, self.preferred):
                has_key = await key_present(self.settings.devices)
            self._order = method_order(
                self.available, requested=self.settings.method, preferred=self.preferred, has_key=has_key
            )
        return self._order

    async def credential(self, challenge: ChallengeSource) -> Credential:
        """The next answer to send: the given code, a typed code, or a security key's assertion.

        Checked against the ledger first: an answer that could lock the account is never produced.
        """
        if self.settings.code is not None:
            self._method = "totp"
            await self._check("totp")
            return Credential("totp", code=self.settings.code.strip())
        order = await self._methods()
        while True:
            self._method = method = order[self._index]
            await self._check(method)
            if method != "webauthn":
                return Credential(method, code=await self._ask(PROMPTS[method]))
            try:
                return await self._touch(challenge)
            except MfaFailed:
                raise
            except MfaError as exc:
                if not self._next_method(exc.message):
                    raise

    async def typed(self, code: str) -> Credential:
        """A code typed while the login waits (or given with ``--mfa-code``), checked against the ledger."""
        self._method = "totp"
        await self._check("totp")
        return Credential("totp", code=code.strip())

    async def _check(self, method: str) -> None:
        if self.ledger is not None:
            await self.ledger.check(_kind(method))

    async def accepted(self) -> None:
        """The gateway accepted the last answer."""
        if self.ledger is not None:
            with anyio.CancelScope(shield=True):  # the ledger must know, even if the login ends now
                await self.ledger.record(_kind(self._method), True)

    def _next_method(self, why: str) -> bool:
        """Move on to the next method (saying why); False when there is none."""
        order = self._order or []
        if self._index + 1 >= len(order):
            return False
        self._index += 1
        self.prompter.notify(f"{why.rstrip('.')}; using a {_LABELS[order[self._index]]} instead.")
        return True

    async def _ask(self, prompt: str) -> str:
        while True:
            with paused() if self.pause_deadline else contextlib.nullcontext():
                code = await self.prompter.ask(prompt, True)
            if code is None:
                raise MfaError(self.no_terminal, hint=NO_TERMINAL_HINT)
            if code.strip():  # an empty line is not an attempt; the gateway never sees it
                return code.strip()

    async def _touch(self, challenge: ChallengeSource) -> Credential:
        from rgw.login.webauthn import get_assertion

        try:
            started = await challenge()
        except GatewayError as exc:
            raise MfaError(f"The gateway offered no security-key challenge ({exc.message})") from exc
        options, session_data = _challenge(started)
        with paused() if self.pause_deadline else contextlib.nullcontext():
            assertion = await get_assertion(
                options,
                self.origin,
                devices=self.settings.devices,
                timeout=self.settings.webauthn_timeout,
                on_touch=lambda: self.prompter.notify(TOUCH_PROMPT),
            )
        return Credential("webauthn", assertion=assertion, session_data=session_data)

    async def rejected(self, exc: MfaRejected) -> None:
        """The gateway refused the last answer: count it, and end the verification when it is over."""
        if self.ledger is not None and exc.code not in ("session_expired", "session_incomplete"):
            with anyio.CancelScope(shield=True):
                await self.ledger.record(_kind(self._method), False)
        if exc.code == "too_many_attempts":
            raise MfaFailed(f"MFA locked: {exc.message}", hint=LOCKOUT_HINT)
        if exc.code in ("session_expired", "session_incomplete"):
            raise MfaFailed(
                f"MFA failed: the login is no longer waiting for MFA ({exc.code})", hint="Run the login again."
            )
        failed = f"MFA verification failed: {exc.message.strip().rstrip('.')}"
        if exc.code != "invalid_code":
            raise MfaFailed(failed)
        self.tries_left -= 1
        if self.settings.code is not None:
            raise MfaFailed(failed, hint=GIVEN_CODE_HINT)
        if self.tries_left <= 0:
            raise MfaFailed(failed, hint="Run it again with a fresh code, or use a backup code.")
        if self._method == "webauthn":
            if not self._next_method(f"The gateway did not accept the security key: {_sentence(exc.message)}"):
                raise MfaFailed(failed)
            return
        if self.on_rejected is not None:
            self.on_rejected(exc.message.strip(), self.tries_left)


class LoginMfa:
    """The MFA stage of a login from the terminal: ``LoginFlow``'s ``MfaSolver``."""

    def __init__(
        self,
        rack: str,
        *,
        prompter: Prompter | None = None,
        settings: MfaSettings | None = None,
        emit: EventSink = discard,
        policy: RetryPolicy | None = None,
        ledger: Callable[[str], MfaLedger | None] | None = None,
        one_rack: bool = True,
    ) -> None:
        self.rack = rack
        self.prompter: Prompter = prompter or NoPrompter()
        self.settings = settings or MfaSettings()
        #: This rack is the command's only one: a code given with ``--mfa-code`` is this rack's.  With
        #: many, one code is never sent to several gateways on a deployed gateway's login.
        self.one_rack = one_rack
        self.emit = emit
        #: A submission that provably did not reach the gateway is retried; any other never is (the
        #: same code sent twice counts as a failure, and failures lock the account).
        self.policy = policy or RetryPolicy(max_attempts=4)
        #: Gateway URL -> its MFA ledger (None: no ledger).
        self.ledger = ledger

    async def solve(self, client: GatewayClient, start: LoginStart, methods: tuple[str, ...]) -> None:
        dialog = MfaDialog(
            prompter=self.prompter,
            settings=self.settings,
            origin=client.base_url,
            available=methods,
            preferred=methods[0] if methods else None,
            on_rejected=lambda text, left: self.emit(MfaCodeRejected(self.rack, _sentence(text), left)),
            ledger=self.ledger(client.base_url) if self.ledger is not None else None,
        )

        async def challenge() -> Mapping[str, Any]:
            return await client.login_webauthn_options(start.state)

        while True:
            answer = await dialog.credential(challenge)
            try:
                await self._submit(client, start, answer)
                break
            except MfaRejected as exc:
                await dialog.rejected(exc)
        # Said first: the poller may now win the race and cancel this task.
        self.emit(MfaVerified(self.rack))
        await dialog.accepted()

    @property
    def given_code(self) -> bool:
        """A code was given with ``--mfa-code`` for this rack's login."""
        return self.settings.code is not None and self.one_rack

    @property
    def method(self) -> str:
        """The code the user is asked for: ``--mfa-method``, else a TOTP code."""
        return self.settings.method or "totp"

    @property
    def expects_mfa(self) -> bool:
        """The command line says the account has MFA (``--mfa-method`` or ``--mfa-code``)."""
        return self.settings.method is not None or self.settings.code is not None

    def codes(self, client: GatewayClient, start: LoginStart, *, given: bool) -> LoginCodes:
        """The codes of a login whose gateway does not report the MFA stage: typed, or ``--mfa-code``."""
        return LoginCodes(self, client, start, given=given)

    async def _submit(self, client: GatewayClient, start: LoginStart, answer: Credential) -> None:
        fields: dict[str, Any] = (
            # The deployed gateway reads the assertion as a JSON string.
            {"session_data": answer.session_data, "assertion_response": json.dumps(answer.assertion)}
            if answer.method == "webauthn"
            else {"code": answer.code}
        )
        method = "webauthn" if answer.method == "webauthn" else "totp"
        await self.policy.call(client.submit_login_mfa, start.state, method, retry_if=unprocessed, **fields)


class LoginCodes:
    """Codes sent to ``/auth/cli/mfa`` of a login whose gateway does not say where it stands.

    A deployed gateway answers its polls "pending" until the session is issued, so the CLI cannot tell
    when the browser reached the MFA page; and a request of its own to find out would take the
    authorization-code exchange from the browser.  So only a code the user typed (``given`` False: up
    to the dialog's try limit, each answer in the ledger) or gave with ``--mfa-code`` (``given``: the
    flow sends it after each poll, refused once and it is over) is sent.  ``send`` answers
    ``verified``, ``incomplete`` (the sign-in in the browser is not finished: nothing happened, the
    code is not resent by itself) or ``wrong`` (tries are left); it raises ``MfaFailed`` when the
    verification is over, and ``LoginStateUnknown`` for a login the gateway no longer knows.
    """

    def __init__(self, solver: LoginMfa, client: GatewayClient, start: LoginStart, *, given: bool) -> None:
        self.solver = solver
        self.client = client
        self.start = start
        settings = solver.settings if given else replace(solver.settings, code=None)
        self.code = settings.code
        self.dialog = MfaDialog(
            prompter=NoPrompter(),
            settings=settings,
            origin=client.base_url,
            on_rejected=lambda text, left: solver.emit(MfaCodeRejected(solver.rack, _sentence(text), left, typed=True)),
            ledger=solver.ledger(client.base_url) if solver.ledger is not None else None,
        )

    async def send(self, code: str | None = None) -> str:
        """Send ``code`` (None: the one given with ``--mfa-code``)."""
        given = code if code is not None else self.code
        assert given is not None
        answer = await self.dialog.typed(given)
        try:
            await self.solver._submit(self.client, self.start, answer)
        except MfaRejected as exc:
            if exc.code == "session_incomplete":
                return "incomplete"  # no attempt: the gateway had nothing to check the code against
            if exc.code == "session_expired":
                raise LoginStateUnknown(
                    f"the gateway no longer knows this login ({exc.code}): it ended before the MFA code reached it"
                ) from None
            await self.dialog.rejected(exc)
            return "wrong"
        await self.dialog.accepted()
        return "verified"


class StepUpMfa:
    """A ``StepUpProvider``: the inline MFA headers for a request the gateway wants step-up MFA for.

    Called with ``rejection=None`` the first time a request needs MFA, then with the gateway's
    message each time it refused the headers; raises to give up (the dialog's try limit, a
    ``--mfa-code`` refused once, nobody to ask, or no MFA enrolled at all).
    """

    def __init__(
        self,
        client: GatewayClient,
        *,
        prompter: Prompter | None = None,
        settings: MfaSettings | None = None,
        ledger: MfaLedger | None = None,
        session_verified: bool | None = None,
    ) -> None:
        self.client = client
        self.prompter: Prompter = prompter or NoPrompter()
        self.settings = settings or MfaSettings()
        self.ledger = ledger
        #: Whether the session verified MFA at login (the stored ``mfa_verified``; None: unknown).
        self.session_verified = session_verified
        self._dialog: MfaDialog | None = None
        self._announced = False

    async def answer(self, level: str, rejection: str | None) -> Mapping[str, str]:
        if rejection is None:
            self._dialog = None  # a new request: a new verification, with its own tries
        dialog = self._dialog or await self._start()  # says so when the account has no MFA at all
        if rejection is None:
            if level == "always" and self.session_verified is False:
                # The deployed gateway refuses "always" operations to a session that did not verify
                # MFA at login, whatever code comes with them: asking for one would only waste it.
                raise SessionNotVerified(
                    "this operation needs a session that verified MFA when it logged in; this one did not"
                )
            if not self._announced:
                self._announced = True
                self.prompter.notify(STEP_UP_NOTICE)
        if rejection is not None:
            await dialog.rejected(MfaRejected("invalid_code", rejection))
        answer = await dialog.credential(self.client.step_up_challenge)
        return answer.headers()

    async def accepted(self) -> None:
        if self._dialog is not None:
            await self._dialog.accepted()

    async def _start(self) -> MfaDialog:
        available: list[str] = []
        preferred: str | None = None
        if self.settings.code is None:
            status = await self._status()
            if status.get("enrolled") is False and not status.get("methods"):
                raise MfaError("this operation needs MFA, but your account has no MFA method enrolled", hint=ENROL_HINT)
            methods = status.get("methods")
            if isinstance(methods, list):
                available = [str(m.get("type")) for m in methods if isinstance(m, dict)]
                if available:
                    available.append("backup_code")  # the status lists devices, not backup codes
            pref = status.get("preferred_method")
            preferred = pref if isinstance(pref, str) else None
        self._dialog = MfaDialog(
            prompter=self.prompter,
            settings=self.settings,
            origin=self.client.base_url,
            available=available if self.settings.method is None else (),
            preferred=preferred,
            on_rejected=lambda text, left: self.prompter.notify(
                f"{text} ({left} {'try' if left == 1 else 'tries'} left)"
            ),
            no_terminal="this operation needs MFA, but there is no terminal to enter a code",
            ledger=self.ledger,
            pause_deadline=True,
        )
        return self._dialog

    async def _status(self) -> dict[str, Any]:
        try:
            return await self.client.mfa_status()
        except RgwError:  # a gateway without the status route: choose without it
            return {}
