"""MFA from the terminal: TOTP codes, backup codes and security keys, at login and for step-up.

``LoginMfa`` is the login orchestrator's ``MfaSolver``: when the gateway reports the MFA stage it picks
a method (``--mfa-method``; else the gateway's preferred one; else WebAuthn when a key is present,
then TOTP, then a backup code), asks through a ``Prompter``, and submits to ``/auth/cli/mfa``.
``StepUpMfa`` is a ``StepUpProvider`` for ``GatewayClient``: it answers an ``X-MFA-Required`` reply
with the inline MFA header of one retry.  Both re-ask a rejected code a few times, always fewer than
the gateway's lock-out (5 failures in 5 minutes), use a code given up front exactly once, never ask
when there is no terminal (``MfaError`` at once), and fall back from a security key that cannot be
used to the next method.  Nothing here prints: prompts and notices go through the ``Prompter``,
progress through login events.  Codes are never put into messages or events.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread

from rgw.client import GatewayClient, MfaRejected, parse_json
from rgw.errors import GatewayError, MfaError, RgwError
from rgw.login.events import EventSink, MfaCodeRejected, MfaVerified, discard
from rgw.models import LoginStart
from rgw.retry import RetryPolicy

#: The methods the CLI can answer with; backup codes travel as ``method: "totp"`` (PROTOCOL.md).
METHODS = ("totp", "webauthn", "backup_code")
#: Codes tried per verification.  The gateway locks MFA after 5 failures in 5 minutes: stay below.
MAX_TRIES = 3

PROMPTS = {"totp": "Enter TOTP code:", "backup_code": "Enter backup code:"}
TOUCH_PROMPT = "Touch your security key..."
STEP_UP_NOTICE = "Step-up MFA required for this operation."
LOCKOUT_HINT = "The gateway locks MFA for a while after 5 failed attempts; wait 5 minutes, then try again."
NO_TERMINAL_HINT = "Pass --mfa-code CODE (a TOTP or backup code), or run the command in a terminal."
_LABELS = {"totp": "TOTP", "webauthn": "security key", "backup_code": "backup code"}


class Prompter(Protocol):
    """Where MFA questions go: a terminal, or nothing (``ask`` answers None at once)."""

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        """One line typed by the user; None when nobody can answer (no terminal, end of input)."""
        ...

    def notify(self, text: str) -> None:
        """Tell the user something (``Touch your security key...``)."""
        ...


class _Refused(MfaError):
    """The gateway refused (lock-out, expired login, last try used): no other method is tried."""


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
                f"--mfa-method {requested}: your account has no {_LABELS[requested]} "
                f"(available: {', '.join(known)})",
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
        return await anyio.to_thread.run_sync(scan)
    except MfaError:  # no fido2, no HID backend, no permission: no key as far as we can tell
        return False


def _rejection_text(exc: MfaRejected) -> str:
    """The gateway's sentence, else its error code in words (``invalid code``)."""
    text = exc.message.strip().rstrip(".")
    return text[:1].upper() + text[1:]


def _fallback_note(exc: MfaError, next_method: str) -> str:
    text = exc.message.rstrip(".")
    return f"{text}; using a {_LABELS[next_method]} instead."


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
    ) -> None:
        self.rack = rack
        self.prompter: Prompter = prompter or NoPrompter()
        self.settings = settings or MfaSettings()
        self.emit = emit
        #: Transient failures (a flaky link) of one submission are retried; a refusal never is.
        self.policy = policy or RetryPolicy(max_attempts=4)
        self._tries_left = self.settings.max_tries

    async def solve(self, client: GatewayClient, start: LoginStart, methods: tuple[str, ...]) -> None:
        settings = self.settings
        if settings.code is not None:
            await self._code_once(client, start, settings.code)
        else:
            preferred = methods[0] if methods else None
            has_key = False
            if needs_key_probe(methods, settings.method, preferred):
                has_key = await key_present(settings.devices)
            order = method_order(methods, requested=settings.method, preferred=preferred, has_key=has_key)
            await self._try_methods(client, start, order)
        self.emit(MfaVerified(self.rack))

    async def _try_methods(self, client: GatewayClient, start: LoginStart, order: list[str]) -> None:
        self._tries_left = self.settings.max_tries
        for index, method in enumerate(order):
            if method != "webauthn":
                await self._codes(client, start, method)
                return
            try:
                await self._webauthn(client, start)
                return
            except _Refused:
                raise
            except MfaError as exc:
                rest = order[index + 1 :]
                if not rest:
                    raise
                self.prompter.notify(_fallback_note(exc, rest[0]))
        raise MfaError("no MFA method left to try", hint="Enroll TOTP or a security key in the gateway's web UI.")

    async def _submit(self, client: GatewayClient, start: LoginStart, method: str, **fields: Any) -> None:
        async for attempt in self.policy.retrying():
            with attempt:
                await client.submit_login_mfa(start.state, method, **fields)

    async def _code_once(self, client: GatewayClient, start: LoginStart, code: str) -> None:
        try:
            await self._submit(client, start, "totp", code=code.strip())
        except MfaRejected as exc:
            raise _final(exc, hint="Check the code (--mfa-code is used once, without prompting).") from None

    async def _codes(self, client: GatewayClient, start: LoginStart, method: str) -> None:
        prompt = PROMPTS[method]
        while True:
            code = await self.prompter.ask(prompt, True)
            if code is None:
                raise MfaError("MFA verification required, but there is no terminal to enter a code",
                               hint=NO_TERMINAL_HINT)
            code = code.strip()
            if not code:
                continue  # an empty line is not an attempt; the gateway never sees it
            try:
                await self._submit(client, start, "totp", code=code)
                return
            except MfaRejected as exc:
                if exc.code != "invalid_code":
                    raise _final(exc) from None
                self._tries_left -= 1
                if self._tries_left <= 0:
                    raise _final(exc, hint="Run the login again with a fresh code, or use a backup code.") from None
                self.emit(MfaCodeRejected(self.rack, _rejection_text(exc), self._tries_left))

    async def _webauthn(self, client: GatewayClient, start: LoginStart) -> None:
        from rgw.login.webauthn import get_assertion

        try:
            started = await client.login_webauthn_options(start.state)
        except GatewayError as exc:
            raise MfaError(f"The gateway offered no security-key challenge ({exc.message})") from exc
        options, session_data = _challenge(started)
        assertion = await get_assertion(
            options,
            client.base_url,
            devices=self.settings.devices,
            timeout=self.settings.webauthn_timeout,
            on_touch=lambda: self.prompter.notify(TOUCH_PROMPT),
        )
        try:
            await self._submit(client, start, "webauthn", session_data=session_data, assertion_response=assertion)
        except MfaRejected as exc:
            if exc.code != "invalid_code":
                raise _final(exc) from None
            self._tries_left -= 1
            if self._tries_left <= 0:
                raise _final(exc) from None
            raise MfaError(f"The gateway did not accept the security key: {_rejection_text(exc)}") from None


def _final(exc: MfaRejected, *, hint: str | None = None) -> _Refused:
    """An MFA failure that ends the verification (no other method is tried)."""
    if exc.code == "too_many_attempts":
        return _Refused(f"MFA locked: {exc.message}", hint=LOCKOUT_HINT)
    if exc.code in ("session_expired", "session_incomplete"):
        return _Refused(f"MFA failed: the login is no longer waiting for MFA ({exc.code})",
                        hint="Run the login again.")
    return _Refused(f"MFA verification failed: {exc.message.strip().rstrip('.')}", hint=hint)


def _challenge(started: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    options = started.get("options")
    session_data = started.get("session_data")
    if not isinstance(options, Mapping) or not isinstance(session_data, str) or not session_data:
        raise MfaError("The gateway sent an unusable security-key challenge")
    return options, session_data


def webauthn_header(assertion_response: Mapping[str, Any], session_data: str) -> str:
    """The ``X-MFA-WebAuthn`` value: base64 of JSON ``{assertion_response, session_data}``."""
    payload = json.dumps({"assertion_response": assertion_response, "session_data": session_data})
    return base64.b64encode(payload.encode()).decode("ascii")


class StepUpMfa:
    """A ``StepUpProvider``: the inline MFA headers for a request the gateway wants step-up MFA for.

    Called with ``rejection=None`` the first time a request needs MFA, then with the gateway's message
    each time it refused the headers; it raises ``MfaError`` to give up (after ``max_tries`` codes, at
    once for a ``--mfa-code``, or when nobody can answer).
    """

    def __init__(
        self,
        client: GatewayClient,
        *,
        prompter: Prompter | None = None,
        settings: MfaSettings | None = None,
    ) -> None:
        self.client = client
        self.prompter: Prompter = prompter or NoPrompter()
        self.settings = settings or MfaSettings()
        self._announced = False
        self._tries = 0
        self._order: list[str] | None = None
        self._method_index = 0

    async def __call__(self, level: str, rejection: str | None) -> Mapping[str, str]:
        settings = self.settings
        if rejection is None:
            self._tries = 0
            if not self._announced:
                self._announced = True
                self.prompter.notify(STEP_UP_NOTICE)
        else:
            self._tries += 1
            left = settings.max_tries - self._tries
            if settings.code is not None or left <= 0:
                hint = "Check the code (--mfa-code is used once)." if settings.code is not None else None
                raise MfaError(f"MFA verification failed: {rejection}", hint=hint)
            self.prompter.notify(f"{rejection} ({left} {'try' if left == 1 else 'tries'} left)")
        if settings.code is not None:
            return {"X-Mfa-Totp": settings.code.strip()}
        order = await self._methods()
        while True:
            method = order[self._method_index]
            if method != "webauthn":
                return {"X-Mfa-Totp": await self._ask_code(method)}
            try:
                return {"X-MFA-WebAuthn": await self._webauthn()}
            except MfaError as exc:
                if self._method_index + 1 >= len(order):
                    raise
                self._method_index += 1
                self.prompter.notify(_fallback_note(exc, order[self._method_index]))

    async def _methods(self) -> list[str]:
        if self._order is None:
            available: list[str] = []
            preferred: str | None = None
            requested = self.settings.method
            if requested is None:
                status = await self._status()
                methods = status.get("methods")
                if isinstance(methods, list):
                    available = [str(m.get("type")) for m in methods if isinstance(m, dict)]
                    if available:
                        available.append("backup_code")  # the status lists devices, not backup codes
                pref = status.get("preferred_method")
                preferred = pref if isinstance(pref, str) else None
            has_key = False
            if needs_key_probe(available, requested, preferred):
                has_key = await key_present(self.settings.devices)
            self._order = method_order(available, requested=requested, preferred=preferred, has_key=has_key)
        return self._order

    async def _status(self) -> dict[str, Any]:
        try:
            return await self.client.mfa_status()
        except RgwError:  # a gateway without the status route: choose without it
            return {}

    async def _ask_code(self, method: str) -> str:
        while True:
            code = await self.prompter.ask(PROMPTS[method], True)
            if code is None:
                raise MfaError("this operation needs MFA, but there is no terminal to enter a code",
                               hint=NO_TERMINAL_HINT)
            if code.strip():
                return code.strip()

    async def _webauthn(self) -> str:
        from rgw.login.webauthn import get_assertion

        try:
            response = await self.client.request("POST", "/api/v1/auth/mfa/webauthn/assertion/start")
            started = _mapping(parse_json(response))
        except GatewayError as exc:
            raise MfaError(f"The gateway offered no security-key challenge ({exc.message})") from exc
        options, session_data = _challenge(started)
        assertion = await get_assertion(
            options,
            self.client.base_url,
            devices=self.settings.devices,
            timeout=self.settings.webauthn_timeout,
            on_touch=lambda: self.prompter.notify(TOUCH_PROMPT),
        )
        return webauthn_header(assertion, session_data)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
