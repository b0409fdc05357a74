"""WebAuthn over CTAP2: rgw.login.webauthn against rgw.testing.SoftAuthenticator, judged by py_webauthn.

The soft key runs under the real fido2 ``Ctap2`` code path; every response rgw produces is verified
the way the gateway verifies it (``verify_registration_response`` / ``verify_authentication_response``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.hid import CAPABILITY, CTAPHID
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.registration.verify_registration_response import VerifiedRegistration

from rgw.errors import MfaError
from rgw.login.webauthn import b64url_decode, b64url_encode, get_assertion, origin_of
from rgw.testing.authenticator import SoftAuthenticator
from rgw.testing.enrol import create_credential

ORIGIN = "http://127.0.0.1:8123"
RP_ID = "127.0.0.1"


class TouchLog:
    """on_touch callback that counts, and records whether it ran on the event loop's thread."""

    def __init__(self) -> None:
        self.count = 0
        self.loop_thread = threading.get_ident()  # built inside the test, on the event loop's thread

    def __call__(self) -> None:
        # rgw must call it on the loop's thread (where the CLI renders), not in the CTAP worker.
        assert threading.get_ident() == self.loop_thread
        self.count += 1


def as_json(options: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(options_to_json(options))
    return document


async def register(
    key: SoftAuthenticator,
    *,
    rp_id: str = RP_ID,
    origin: str = ORIGIN,
    devices: list[SoftAuthenticator] | None = None,
    **options: Any,
) -> VerifiedRegistration:
    creation = generate_registration_options(
        rp_id=rp_id, rp_name="rack gateway", user_name="dev@example.com", **options
    )
    response = await create_credential(as_json(creation), origin, devices=devices or [key])
    return verify_registration_response(
        credential=response,
        expected_challenge=creation.challenge,
        expected_rp_id=rp_id,
        expected_origin=origin.rstrip("/"),
    )


def request_options(
    registered: list[VerifiedRegistration], *, rp_id: str = RP_ID, **options: Any
) -> tuple[Any, dict[str, Any]]:
    request = generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=[PublicKeyCredentialDescriptor(id=r.credential_id) for r in registered],
        **options,
    )
    return request, as_json(request)  # py_webauthn's JSON is the publicKey member itself


def verify_assertion(
    response: Mapping[str, Any],
    request: Any,
    registration: VerifiedRegistration,
    *,
    rp_id: str = RP_ID,
    origin: str = ORIGIN,
    sign_count: int | None = None,
    require_user_verification: bool = False,
) -> int:
    verified = verify_authentication_response(
        credential=dict(response),
        expected_challenge=request.challenge,
        expected_rp_id=rp_id,
        expected_origin=origin,
        credential_public_key=registration.credential_public_key,
        credential_current_sign_count=registration.sign_count if sign_count is None else sign_count,
        require_user_verification=require_user_verification,
    )
    assert verified.credential_id == registration.credential_id
    return verified.new_sign_count


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("rp_id", "origin"), [(RP_ID, ORIGIN), ("localhost", "http://localhost:8123")])
async def test_register_then_assert_is_accepted_by_py_webauthn(rp_id: str, origin: str) -> None:
    key = SoftAuthenticator()
    touches = TouchLog()
    creation = generate_registration_options(rp_id=rp_id, rp_name="rack gateway", user_name="dev@example.com")

    registration_response = await create_credential(as_json(creation), origin, devices=[key], on_touch=touches)

    assert set(registration_response) == {
        "id",
        "rawId",
        "type",
        "response",
        "clientExtensionResults",
        "authenticatorAttachment",
    }
    assert registration_response["type"] == "public-key"
    assert registration_response["id"] == registration_response["rawId"]
    client_data = json.loads(b64url_decode(registration_response["response"]["clientDataJSON"]))
    assert client_data == {
        "type": "webauthn.create",
        "challenge": b64url_encode(creation.challenge),
        "origin": origin,
        "crossOrigin": False,
    }
    registration = verify_registration_response(
        credential=registration_response,
        expected_challenge=creation.challenge,
        expected_rp_id=rp_id,
        expected_origin=origin,
    )
    assert registration.fmt == "none"  # the gateway asked for no attestation
    assert registration.aaguid == "00000000-0000-0000-0000-000000000000"
    assert registration.credential_id in key.credentials
    assert touches.count == 1

    request, public_key = request_options([registration], rp_id=rp_id)
    assertion = await get_assertion(public_key, origin, devices=[key], on_touch=touches)

    assert set(assertion["response"]) == {"clientDataJSON", "authenticatorData", "signature"}
    assert json.loads(b64url_decode(assertion["response"]["clientDataJSON"]))["type"] == "webauthn.get"
    first_count = verify_assertion(assertion, request, registration, rp_id=rp_id, origin=origin)
    assert first_count > registration.sign_count
    assert touches.count == 2
    assert key.touch_requests == 2

    # A second assertion must carry a higher sign count than the one the gateway stored.
    request, public_key = request_options([registration], rp_id=rp_id)
    assertion = await get_assertion(public_key, origin, devices=[key])
    second_count = verify_assertion(
        assertion, request, registration, rp_id=rp_id, origin=origin, sign_count=first_count
    )
    assert second_count > first_count


@pytest.mark.anyio
async def test_packed_self_attestation_when_the_gateway_asks_for_it() -> None:
    key = SoftAuthenticator()
    registration = await register(key, attestation=AttestationConveyancePreference.DIRECT)
    assert registration.fmt == "packed"


@pytest.mark.anyio
async def test_origin_is_the_base_url_without_path_or_trailing_slash() -> None:
    key = SoftAuthenticator()
    registration = await register(key, origin=ORIGIN + "/")  # verified against ORIGIN
    request, public_key = request_options([registration])
    assertion = await get_assertion(public_key, ORIGIN + "/api/v1/", devices=[key])
    verify_assertion(assertion, request, registration)
    assert origin_of("HTTPS://user:pw@Gateway.Example.com:8443/x?y") == "https://gateway.example.com:8443"


@pytest.mark.anyio
async def test_the_key_holding_the_credential_is_found_without_touching_the_others() -> None:
    first, second = SoftAuthenticator(name="first"), SoftAuthenticator(name="second")
    other = await register(first)  # a credential the gateway does not ask for
    registration = await register(second)
    touches = TouchLog()
    request, public_key = request_options([registration])

    assertion = await get_assertion(public_key, ORIGIN, devices=[first, second], on_touch=touches)

    verify_assertion(assertion, request, registration)
    assert assertion["rawId"] == b64url_encode(registration.credential_id)
    assert other.credential_id in first.credentials
    assert (first.touch_requests, second.touch_requests) == (1, 2)  # only the registrations before
    assert touches.count == 1


@pytest.mark.anyio
async def test_discoverable_credential_without_allow_list_returns_the_user_handle() -> None:
    key = SoftAuthenticator()
    user_id = b"user-42"
    registration = await register(
        key,
        user_id=user_id,
        authenticator_selection=AuthenticatorSelectionCriteria(resident_key=ResidentKeyRequirement.REQUIRED),
    )
    assert key.credentials[registration.credential_id].resident
    request, public_key = request_options([])
    assert "allowCredentials" not in public_key or public_key["allowCredentials"] == []

    assertion = await get_assertion(public_key, ORIGIN, devices=[key])

    assert b64url_decode(assertion["response"]["userHandle"]) == user_id
    verify_assertion(assertion, request, registration)


@pytest.mark.anyio
async def test_user_verification_required_uses_built_in_uv() -> None:
    key = SoftAuthenticator(uv=True)
    registration = await register(key)
    request, public_key = request_options([registration], user_verification=UserVerificationRequirement.REQUIRED)

    assertion = await get_assertion(public_key, ORIGIN, devices=[key])

    verify_assertion(assertion, request, registration, require_user_verification=True)


# -- failures --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rp_id_that_does_not_belong_to_the_origin_is_refused_before_the_key_is_used() -> None:
    key = SoftAuthenticator()
    registration = await register(key)
    commands_before = list(key.commands)
    _, public_key = request_options([registration], rp_id="gateway.example.com")

    with pytest.raises(
        MfaError, match=r"signature for 'gateway\.example\.com'.*does not belong to http://127\.0\.0\.1:8123"
    ) as err:
        await get_assertion(public_key, ORIGIN, devices=[key])

    assert err.value.hint is not None
    assert key.commands == commands_before


@pytest.mark.anyio
async def test_credential_of_another_rp_is_not_used() -> None:
    key = SoftAuthenticator()
    registration = await register(key, rp_id="localhost", origin="http://localhost:8123")
    touches = TouchLog()
    _, public_key = request_options([registration], rp_id=RP_ID)

    with pytest.raises(MfaError, match=r"No connected security key is registered for 127\.0\.0\.1") as err:
        await get_assertion(public_key, ORIGIN, devices=[key], on_touch=touches)

    assert err.value.hint is not None
    assert "registered" in err.value.hint
    assert touches.count == 0
    assert key.touch_requests == 1  # the registration only


@pytest.mark.anyio
async def test_no_devices() -> None:
    _, public_key = request_options([])
    with pytest.raises(MfaError, match="No security key found") as err:
        await get_assertion(public_key, ORIGIN, devices=[])
    assert err.value.hint is not None
    assert "Insert" in err.value.hint
    assert err.value.exit_code == 9


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("presence_error", "message"),
    [
        (CtapError.ERR.USER_ACTION_TIMEOUT, "was not touched in time"),
        (CtapError.ERR.OPERATION_DENIED, "refused the request"),
    ],
)
async def test_user_not_present(presence_error: int, message: str) -> None:
    key = SoftAuthenticator()
    registration = await register(key)
    key.user_present = False
    key.presence_error = presence_error
    touches = TouchLog()
    _, public_key = request_options([registration])

    with pytest.raises(MfaError, match=message) as err:
        await get_assertion(public_key, ORIGIN, devices=[key], on_touch=touches)

    assert err.value.hint is not None
    assert "touch" in err.value.hint
    assert touches.count == 1


@pytest.mark.anyio
async def test_deadline_cancels_the_waiting_key() -> None:
    key = SoftAuthenticator()
    registration = await register(key)
    key.touch_delay = 60.0  # the user never touches; only a CTAP cancel ends the wait
    _, public_key = request_options([registration])

    with pytest.raises(MfaError, match=r"No answer from the security key within 0\.2 s"):
        await get_assertion(public_key, ORIGIN, devices=[key], timeout=0.2)

    with anyio.fail_after(10):
        while key.cancellations == 0:
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_cancelling_the_caller_cancels_the_key() -> None:
    key = SoftAuthenticator()
    registration = await register(key)
    key.touch_delay = 60.0
    _, public_key = request_options([registration])
    touched = anyio.Event()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: get_assertion(public_key, ORIGIN, devices=[key], on_touch=touched.set))
        await touched.wait()
        tg.cancel_scope.cancel()

    with anyio.fail_after(10):
        while key.cancellations == 0:
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_user_verification_required_without_uv_is_a_clear_error() -> None:
    key = SoftAuthenticator()
    registration = await register(key)
    _, public_key = request_options([registration], user_verification=UserVerificationRequirement.REQUIRED)

    with pytest.raises(MfaError, match="PIN or fingerprint") as err:
        await get_assertion(public_key, ORIGIN, devices=[key])
    assert err.value.hint is not None
    assert "TOTP" in err.value.hint


@pytest.mark.anyio
async def test_registration_skips_a_key_that_is_already_registered() -> None:
    used, fresh = SoftAuthenticator(name="used"), SoftAuthenticator(name="fresh")
    existing = await register(used)
    exclude = [PublicKeyCredentialDescriptor(id=existing.credential_id)]

    with pytest.raises(MfaError, match="already registered"):
        await register(used, exclude_credentials=exclude)
    registration = await register(used, devices=[used, fresh], exclude_credentials=exclude)

    assert registration.credential_id in fresh.credentials
    assert used.touch_requests == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "public_key",
    [
        {"challenge": "not base64!", "rpId": RP_ID},
        {"rpId": RP_ID},
        {"challenge": "AAAA", "rpId": RP_ID, "allowCredentials": [{"type": "public-key", "id": "%%"}]},
    ],
)
async def test_malformed_options_are_an_mfa_error(public_key: dict[str, Any]) -> None:
    with pytest.raises(MfaError, match="invalid WebAuthn options"):
        await get_assertion(public_key, ORIGIN, devices=[SoftAuthenticator()])


def test_fido2_is_optional_and_not_imported_at_start_up() -> None:
    script = (
        "import sys\n"
        "import rgw.login.webauthn as w\n"
        "assert not any(m.split('.')[0] == 'fido2' for m in sys.modules), 'fido2 imported at start-up'\n"
        "sys.modules['fido2'] = None  # as if the package were not installed\n"
        "try:\n"
        "    w.find_devices()\n"
        "except w.MfaError as exc:\n"
        "    print(exc.message, '|', exc.hint)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "WebAuthn needs the fido2 package | pip install 'rgw[webauthn]'"


# -- the soft authenticator itself -----------------------------------------------------------


def test_soft_authenticator_speaks_ctap2_and_rejects_what_it_lacks() -> None:
    key = SoftAuthenticator()
    ctap = Ctap2(key)
    assert ctap.info.versions == ["FIDO_2_0"]
    assert bytes(ctap.info.aaguid) == b"\0" * 16
    assert ctap.info.options["rk"] is True
    assert "uv" not in ctap.info.options

    with pytest.raises(CtapError) as err:
        ctap.send_cbor(Ctap2.CMD.CLIENT_PIN, {1: 1, 2: 1})
    assert err.value.code == CtapError.ERR.INVALID_COMMAND
    with pytest.raises(CtapError) as err:
        ctap.get_next_assertion()
    assert err.value.code == CtapError.ERR.NOT_ALLOWED
    with pytest.raises(CtapError) as err:
        ctap.get_assertion(RP_ID, b"\0" * 32, [{"type": "public-key", "id": b"unknown"}])
    assert err.value.code == CtapError.ERR.NO_CREDENTIALS
    with pytest.raises(CtapError) as err:
        ctap.make_credential(b"\0" * 32, {"id": RP_ID}, {"id": b"u"}, [{"type": "public-key", "alg": -257}])
    assert err.value.code == CtapError.ERR.UNSUPPORTED_ALGORITHM
    with pytest.raises(CtapError) as err:
        key.call(CTAPHID.MSG, b"\0\x01\0\0")  # CTAP1/U2F is not spoken
    assert err.value.code == CtapError.ERR.INVALID_COMMAND
    assert key.call(CTAPHID.PING, b"hello") == b"hello"


class U2fOnlyKey(SoftAuthenticator):
    """A key without CTAP2 (no CBOR capability), like an old U2F token."""

    @property
    def capabilities(self) -> int:
        return int(CAPABILITY.WINK)


@pytest.mark.anyio
async def test_u2f_only_keys_are_named_as_the_problem() -> None:
    _, public_key = request_options([])
    with pytest.raises(MfaError, match=r"None of the connected security keys \(2\) speaks FIDO2"):
        await get_assertion(public_key, ORIGIN, devices=[U2fOnlyKey(), U2fOnlyKey()])
