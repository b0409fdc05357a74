"""MFA method selection, the step-up provider and the client's step-up loop, without a gateway."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from rgw.cli.app import App, Options, step_up_error
from rgw.cli.mfa import DeferredStepUp
from rgw.client import MAX_STEP_UP_TRIES, GatewayClient
from rgw.errors import MfaError, MfaRequired
from rgw.login.mfa import (
    LoginMfa,
    MfaSettings,
    StepUpMfa,
    key_present,
    method_order,
    needs_key_probe,
    webauthn_header,
)
from rgw.models import LoginStart
from rgw.targets import Target

ALL = ("totp", "webauthn", "backup_code")
TOKEN_ID = "0b5c0f3e-6f7a-4d8e-9a1b-2c3d4e5f6a7b"


# -- method selection ------------------------------------------------------------------------------


def test_requested_method_wins() -> None:
    assert method_order(ALL, requested="backup_code", preferred="totp", has_key=True) == ["backup_code"]


def test_requested_method_the_account_lacks_is_an_error() -> None:
    with pytest.raises(MfaError, match=r"no security key \(available: totp, backup_code\)") as info:
        method_order(("totp", "backup_code"), requested="webauthn")
    assert info.value.hint == "Use --mfa-method totp, or leave the option out."


def test_requested_method_is_taken_on_trust_when_the_gateway_lists_none() -> None:
    assert method_order((), requested="webauthn") == ["webauthn"]


def test_gateways_preference_comes_first() -> None:
    assert method_order(ALL, preferred="totp", has_key=True) == ["totp", "webauthn", "backup_code"]
    assert method_order(ALL, preferred="webauthn") == ["webauthn", "totp", "backup_code"]


@pytest.mark.parametrize(
    ("available", "has_key", "expected"),
    [
        (ALL, True, ["webauthn", "totp", "backup_code"]),
        (ALL, False, ["totp", "backup_code", "webauthn"]),  # an unplugged key is still tried, last
        (("totp",), True, ["totp"]),
        (("backup_code",), False, ["backup_code"]),
        ((), True, ["webauthn", "totp", "backup_code"]),
        ((), False, ["totp", "backup_code"]),
        (("sms", "totp"), False, ["totp"]),  # methods the CLI cannot answer are ignored
    ],
)
def test_without_a_preference_a_present_key_goes_first(
    available: tuple[str, ...], has_key: bool, expected: list[str]
) -> None:
    assert method_order(available, has_key=has_key) == expected


def test_preferred_method_the_account_lacks_is_skipped() -> None:
    assert method_order(("totp",), preferred="webauthn") == ["totp"]


def test_keys_are_probed_only_when_nothing_else_decides() -> None:
    assert needs_key_probe(ALL, None, None)
    assert needs_key_probe((), None, None)
    assert not needs_key_probe(ALL, "totp", None)
    assert not needs_key_probe(ALL, None, "totp")
    assert not needs_key_probe(("totp", "backup_code"), None, None)


@pytest.mark.anyio
async def test_injected_devices_decide_key_presence() -> None:
    assert await key_present([object()]) is True
    assert await key_present([]) is False


def test_settings_refuse_unknown_methods_and_too_many_tries() -> None:
    with pytest.raises(MfaError, match="unknown MFA method 'sms'"):
        MfaSettings(method="sms")
    with pytest.raises(ValueError, match="lock-out"):
        MfaSettings(max_tries=5)


def test_webauthn_header_is_base64_json() -> None:
    header = webauthn_header({"id": "abc"}, "sess-1")
    assert json.loads(base64.b64decode(header)) == {"assertion_response": {"id": "abc"}, "session_data": "sess-1"}


# -- no terminal -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_login_mfa_without_a_terminal_fails_before_sending_anything() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500)

    start = LoginStart(auth_url="https://gw.example.com/x", state="s" * 43, code_verifier="v" * 64)
    async with GatewayClient("https://gw.example.com", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(MfaError, match="no terminal to enter a code") as info:
            await LoginMfa("dev").solve(client, start, ("totp", "backup_code"))
    assert info.value.exit_code == 9
    assert "--mfa-code" in (info.value.hint or "")
    assert seen == []


# -- the client's step-up loop -------------------------------------------------------------------


def step_up_answer(message: str = "api-token:create requires a recent MFA verification.") -> httpx.Response:
    return httpx.Response(
        401, json={"error": "mfa_step_up_required", "message": message}, headers={"X-MFA-Required": "step-up"}
    )


@pytest.mark.anyio
async def test_rejected_codes_are_retried_at_most_max_step_up_tries_times() -> None:
    calls: list[str | None] = []
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("x-mfa-totp"))
        return step_up_answer("The MFA code was not accepted.")

    class CarelessProvider:
        """Never gives up, whatever the gateway says: the auth flow must stop it."""

        async def answer(self, level: str, rejection: str | None) -> dict[str, str]:
            calls.append(rejection)
            return {"X-Mfa-Totp": "000000"}

        async def accepted(self) -> None:
            raise AssertionError("nothing was accepted")

    transport = httpx.MockTransport(handler)
    async with GatewayClient(
        "https://gw.example.com", token="t", transport=transport, step_up=lambda _client: CarelessProvider()
    ) as client:
        with pytest.raises(MfaRequired):
            await client.delete_api_token(TOKEN_ID)
    assert calls == [None] + ["The MFA code was not accepted."] * (MAX_STEP_UP_TRIES - 1)
    assert sent == [None] + ["000000"] * MAX_STEP_UP_TRIES
    assert MAX_STEP_UP_TRIES < 5


@pytest.mark.anyio
async def test_lock_out_during_step_up_is_an_mfa_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-mfa-totp"):
            return httpx.Response(
                429,
                json={"error": "too_many_attempts", "message": "Too many failed MFA attempts. Try again in 5 minutes."},
            )
        return step_up_answer()

    step_up = lambda client: StepUpMfa(client, settings=MfaSettings(method="totp", code="123456"))  # noqa: E731
    async with GatewayClient(
        "https://gw.example.com", token="t", transport=httpx.MockTransport(handler), step_up=step_up
    ) as client:
        with pytest.raises(MfaError, match="MFA locked: Too many failed MFA attempts") as info:
            await client.delete_api_token(TOKEN_ID)
    assert info.value.exit_code == 9


@pytest.mark.anyio
async def test_a_given_code_is_used_once() -> None:
    codes: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        codes.append(request.headers.get("x-mfa-totp"))
        return step_up_answer("The MFA code was not accepted.")

    step_up = lambda client: StepUpMfa(client, settings=MfaSettings(code=" 123456 "))  # noqa: E731
    async with GatewayClient(
        "https://gw.example.com", token="t", transport=httpx.MockTransport(handler), step_up=step_up
    ) as client:
        with pytest.raises(MfaError, match="MFA verification failed: The MFA code was not accepted"):
            await client.delete_api_token(TOKEN_ID)
    assert codes == [None, "123456"]


@pytest.mark.anyio
async def test_api_tokens_get_an_mfa_error_instead_of_a_prompt(tmp_path: Path) -> None:
    app = App(options=Options(config_dir=tmp_path, mfa_code="123456"), environ={}, interactive=True)
    token_target = Target(url="https://gw.example.com", token="rgw_x", rack_name="dev", rack=None, api_token=True)
    session_target = Target(url="https://gw.example.com", token="s", rack_name="dev", rack=None, api_token=False)
    assert app.step_up_for(token_target) is None  # never a prompt, never --mfa-code, for an API token
    factory = app.step_up_for(session_target)
    assert factory is not None
    async with GatewayClient(session_target.url, token=session_target.token, step_up=factory) as client:
        assert isinstance(client.step_up, DeferredStepUp)  # the dialog is loaded when a request needs MFA
        assert isinstance(client.step_up.provider(), StepUpMfa)
    error = step_up_error(
        MfaRequired("convox:app:delete requires a recent MFA verification.", level="step-up"), token_target
    )
    assert isinstance(error, MfaError)
    assert error.exit_code == 9
    assert "API tokens cannot answer MFA" in (error.hint or "")
