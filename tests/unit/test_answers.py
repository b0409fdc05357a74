"""rgw.client.answers: what each answer of a gateway, or its absence, becomes for the user."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from rgw.client.answers import (
    check_response,
    classify_transport_error,
    enrolment_required,
    is_rate_limit,
    login_refused,
    mfa_level,
    parse_json,
    redact,
    retry_after_of,
    unreachable,
)
from rgw.errors import (
    ENROL_HINT,
    AuthenticationError,
    GatewayError,
    LoginError,
    LoginStateUnknown,
    MfaError,
    MfaFailed,
    MfaRequired,
    PermissionDenied,
)

URL = "https://gw.example.com/api/v1/info"


def answer(
    status: int, *, json: object = None, text: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("GET", URL)
    if json is not None:
        return httpx.Response(status, json=json, headers=headers, request=request)
    return httpx.Response(status, text=text or "", headers=headers, request=request)


def caused(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (httpx.ConnectTimeout("x"), "timeout"),
        (caused(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")), "dns"),
        (caused(httpx.ConnectError("x"), ConnectionRefusedError(111, "no")), "refused"),
        (caused(httpx.ConnectError("x"), ssl.SSLError(1, "bad")), "tls"),
        (caused(httpx.ReadError("x"), ConnectionResetError(104, "gone")), "reset"),
        (caused(httpx.WriteError("x"), BrokenPipeError(32, "pipe")), "reset"),
        (caused(httpx.ReadError("x"), ConnectionAbortedError(103, "abort")), "reset"),
        (caused(httpx.ConnectError("x"), TimeoutError("slow")), "timeout"),
        (
            caused(
                httpx.ConnectError("x"), BaseExceptionGroup("all", [OSError("a"), ConnectionRefusedError(111, "no")])
            ),
            "refused",
        ),
        (httpx.ConnectError("[Errno -2] Name or service not known"), "dns"),
        (httpx.ConnectError("nodename nor servname provided"), "dns"),
        (httpx.ConnectError("getaddrinfo failed"), "dns"),
        (httpx.ConnectError("Temporary failure in name resolution"), "dns"),
        (httpx.ConnectError("No address associated with hostname"), "dns"),
        (httpx.ConnectError("Connection refused"), "refused"),
        (httpx.ConnectError("certificate verify failed"), "tls"),
        (httpx.ConnectError("SSL: wrong version"), "tls"),
        (httpx.ConnectError("TLS alert"), "tls"),
        (httpx.RemoteProtocolError("peer closed"), "reset"),
        (httpx.ReadError("x"), "reset"),
        (httpx.WriteError("x"), "reset"),
        (httpx.ConnectError("connection reset by peer"), "reset"),
        (httpx.ConnectError("unknown"), "network"),
    ],
)
def test_a_transport_failure_is_told_by_its_cause(exc: BaseException, cause: str) -> None:
    assert classify_transport_error(exc) == cause


def test_a_failure_whose_causes_loop_is_classified_once_each() -> None:
    outer = httpx.ConnectError("x")
    inner = OSError("y")
    outer.__cause__ = inner
    inner.__context__ = outer
    assert classify_transport_error(outer) == "network"


@pytest.mark.parametrize(
    ("exc", "message", "hint", "sent"),
    [
        (
            httpx.ConnectError("Name or service not known"),
            "gateway gw.example.com unreachable: DNS lookup failed",
            "Check the URL, and that your VPN or Tailscale link is up (the name did not resolve).",
            False,
        ),
        (
            httpx.ConnectError("Connection refused"),
            "gateway gw.example.com unreachable: connection refused",
            "Check the URL and port, and that the gateway is running. "
            "If the gateway is behind a VPN or Tailscale, check that the link is up.",
            False,
        ),
        (
            httpx.ConnectError("certificate verify failed"),
            "gateway gw.example.com unreachable: TLS handshake failed (certificate verify failed)",
            "The gateway's certificate could not be verified; check the URL (https://...) and your clock.",
            False,
        ),
        (
            httpx.ReadError("weird " + "x" * 300),
            "gateway gw.example.com unreachable: connection reset",
            "Check your network connection. If the gateway is behind a VPN or Tailscale, check that the link is up.",
            True,
        ),
        (
            httpx.ReadTimeout("slow"),
            "gateway gw.example.com unreachable: timed out",
            "Check your network connection. If the gateway is behind a VPN or Tailscale, check that the link is up.",
            True,
        ),
        (httpx.PoolTimeout("busy"), "gateway gw.example.com unreachable: timed out", None, False),
        (httpx.ConnectTimeout("slow"), "gateway gw.example.com unreachable: timed out", None, False),
    ],
)
def test_an_unreachable_gateway_says_the_cause_what_to_check_and_whether_the_request_went(
    exc: BaseException, message: str, hint: str | None, sent: bool
) -> None:
    error = unreachable(URL, exc)
    assert error.message == message
    if hint is not None:
        assert error.hint == hint
    assert error.request_sent is sent


def test_an_unreachable_gateway_s_network_detail_is_cut_and_redacted() -> None:
    error = unreachable("https://gw.example.com", httpx.ConnectError("  odd failure token=abc123 " + "y" * 300))
    assert error.cause == "network"
    assert error.message.startswith("gateway gw.example.com unreachable: network error (odd failure token=<redacted> ")
    assert error.message.endswith("y)")
    assert len(error.message) == len("gateway gw.example.com unreachable: network error (") + 200 + 1
    assert (
        unreachable("gw-no-scheme", httpx.ConnectError("")).message == "gateway gw-no-scheme unreachable: network error"
    )


def test_a_401_asking_for_mfa_is_mfa_required_at_its_level() -> None:
    with pytest.raises(MfaRequired) as caught:
        check_response(
            answer(401, json={"error": "mfa_required", "message": "step up"}, headers={"X-MFA-Required": "step-up"})
        )
    assert (caught.value.message, caught.value.level) == ("step up", "step-up")
    with pytest.raises(MfaRequired) as bare:
        check_response(answer(401, headers={"X-MFA-Required": "always"}))
    assert (bare.value.message, bare.value.level) == ("MFA required", "always")
    with pytest.raises(MfaRequired) as only_error:
        check_response(answer(401, json={"error": "mfa please"}, headers={"X-MFA-Required": "always"}))
    assert only_error.value.message == "mfa please"


def test_a_wrong_inline_mfa_code_is_mfa_failed_not_a_bad_session() -> None:
    with pytest.raises(MfaFailed) as caught:
        check_response(answer(401, json={"error": "mfa_verification_failed", "message": "code rejected."}))
    assert caught.value.message == "MFA verification failed: code rejected"
    assert caught.value.hint == "Run it again with a fresh code."
    with pytest.raises(MfaFailed) as bare:
        check_response(answer(401, json={"error": "mfa_verification_failed"}))
    assert bare.value.message == "MFA verification failed: invalid MFA code"


def test_a_401_is_an_expired_session_with_the_gateway_s_reason() -> None:
    with pytest.raises(AuthenticationError) as caught:
        check_response(
            answer(
                401, json={"error": "session revoked", "message": "ask again"}, headers={"X-Error-Reason": "revoked"}
            )
        )
    assert (caught.value.message, caught.value.reason, caught.value.detail) == (
        "session expired or invalid",
        "revoked",
        "ask again",
    )
    with pytest.raises(AuthenticationError) as by_error:
        check_response(answer(401, json={"error": "session expired"}))
    assert by_error.value.reason == "session expired"
    with pytest.raises(AuthenticationError) as bare:
        check_response(answer(401))
    assert bare.value.reason == "authentication failed"


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({"error": "mfa_enrollment_required", "message": "enrol now"}, {}, "MFA enrolment required: enrol now"),
        (
            {"error": "forbidden"},
            {"X-MFA-Required": "enrollment"},
            "MFA enrolment required: your account must enrol in MFA first",
        ),
        (
            {"error": "forbidden", "message": "Multi-factor authentication must be set up first"},
            {},
            "MFA enrolment required: Multi-factor authentication must be set up first",
        ),
    ],
)
def test_a_403_asking_to_enrol_in_mfa_says_so_with_the_enrolment_hint(
    body: dict[str, str], headers: dict[str, str], message: str
) -> None:
    with pytest.raises(MfaError) as caught:
        check_response(answer(403, json=body, headers=headers))
    assert caught.value.message == message
    assert caught.value.hint == ENROL_HINT


@pytest.mark.parametrize(
    ("error", "message", "enrol"),
    [
        ("", "Multi-factor authentication: enrol first", True),
        ("multi-factor authentication required", "please set up a method", True),
        ("", "multi-factor authentication is required", False),  # asks for a code, not enrolment
        ("", "set up your profile", False),
        ("mfa_enrollment_required", None, True),
        ("forbidden", None, False),
    ],
)
def test_enrolment_is_asked_for_only_when_mfa_and_setting_up_are_both_named(
    error: str, message: str | None, enrol: bool
) -> None:
    assert enrolment_required(answer(403), error, message) is enrol


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            {"error": "insufficient permissions", "message": "needs admin"},
            "permission denied: insufficient permissions: needs admin",
        ),
        ({"error": "forbidden", "message": "needs admin"}, "permission denied: forbidden"),
        ({"error": "Permission denied for apps"}, "Permission denied for apps"),
        ({"message": "no"}, "permission denied"),
        (
            {"error": "insufficient permissions", "message": "insufficient"},
            "permission denied: insufficient permissions",
        ),
    ],
)
def test_a_403_is_permission_denied_with_the_gateway_s_words(body: dict[str, str], text: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        check_response(answer(403, json=body))
    assert caught.value.message == text


def test_any_other_error_status_is_a_gateway_error_with_its_words_status_and_retry_after() -> None:
    assert check_response(answer(399)).status_code == 399
    with pytest.raises(GatewayError) as caught:
        check_response(answer(400, json={"error": "bad", "message": "really bad"}, headers={"Retry-After": "7"}))
    assert (caught.value.message, caught.value.status, caught.value.retry_after) == (
        "gateway error (HTTP 400): really bad",
        400,
        7.0,
    )
    with pytest.raises(GatewayError) as html:
        check_response(answer(502, text="<html>bad gateway</html>", headers={"Content-Type": "text/html"}))
    assert html.value.message == "gateway error (HTTP 502, an HTML page)"
    with pytest.raises(GatewayError) as empty:
        check_response(answer(500))
    assert empty.value.message == "gateway error (HTTP 500, no usable message)"
    with pytest.raises(GatewayError) as plain:
        check_response(answer(503, text="\n  down for maintenance\nsecond line"))
    assert plain.value.message == "gateway error (HTTP 503): down for maintenance"


@pytest.mark.parametrize(
    ("headers", "level"),
    [
        ({"X-MFA-Required": "step-up"}, "step-up"),
        ({"X-MFA-Required": "ALWAYS"}, "always"),
        ({"X-MFA-Required": "true", "X-MFA-Level": "step_up"}, "step-up"),
        ({"X-MFA-Required": "TRUE", "X-MFA-Level": "Always"}, "always"),
        ({"X-MFA-Required": "true"}, "step-up"),
        ({}, None),
    ],
)
def test_the_mfa_level_an_answer_asks_for(headers: dict[str, str], level: str | None) -> None:
    assert mfa_level(answer(401, headers=headers)) == level


@pytest.mark.parametrize(
    ("response", "limited"),
    [
        (answer(429, headers={"X-RateLimit-Limit": "10"}), True),
        (answer(429, json={"error": "Rate limit exceeded"}), True),
        (answer(429, json={"error": "too_many", "message": "rate limit hit"}), True),
        (answer(429, json={"error": "too many failed MFA attempts"}), False),
        (answer(503, headers={"X-RateLimit-Limit": "10"}), False),
    ],
)
def test_a_429_from_the_limiter_is_told_from_an_mfa_lock_out(response: httpx.Response, limited: bool) -> None:
    assert is_rate_limit(response) is limited


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), ("-2", 0.0), ("nan", None), ("inf", None), ("soon", None)])
def test_retry_after_is_a_finite_count_of_seconds(value: str, seconds: float | None) -> None:
    assert retry_after_of(answer(429, headers={"Retry-After": value})) == seconds
    assert retry_after_of(answer(429)) is None


def test_a_body_that_is_not_json_is_a_gateway_error_saying_what_came() -> None:
    with pytest.raises(GatewayError) as html:
        parse_json(answer(200, text="  <html>login</html>"))
    assert html.value.message == "gateway sent an HTML page where JSON was expected (HTTP 200)"
    assert html.value.status == 200
    assert html.value.hint == "Check the URL points at a rack gateway, not a web page or another service."
    with pytest.raises(GatewayError) as cut:
        parse_json(answer(201, text='{"a": '))
    assert cut.value.message == "gateway sent a body that is not valid JSON (HTTP 201)"


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "email domain not allowed: dev@elsewhere.com",
            "email domain not allowed",
            "Signed in as dev@elsewhere.com. Your Google Workspace domain isn't configured in the gateway. "
            "Contact your administrator to add your domain to GOOGLE_ALLOWED_DOMAIN.",
        ),
        (
            "Email domain not allowed",
            "Email domain not allowed",
            "Your Google Workspace domain isn't configured in the gateway. "
            "Contact your administrator to add your domain to GOOGLE_ALLOWED_DOMAIN.",
        ),
        (
            "user not authorized",
            "user not authorized",
            "Your account is not a user of this gateway; ask an administrator to add you.",
        ),
        (
            "Multi-factor needed: x",
            "Multi-factor needed: x",
            "Set up MFA in the gateway's web UI, then run the login again.",
        ),
        ("consent denied", "consent denied", "Run the login again and allow access on the consent page."),
        (
            "identity provider error",
            "identity provider error",
            "The sign-in at the gateway's identity provider did not give it a usable identity. Run the login again; "
            "if it fails the same way, ask your administrator to check the gateway's sign-in settings.",
        ),
        ("  ", "login refused by the gateway", LoginError("x").hint),  # the default: no advice of our own
        ("something else", "something else", LoginError("x").hint),
    ],
)
def test_a_refused_login_keeps_the_gateway_s_words_and_says_what_to_do(
    text: str, message: str, hint: str | None
) -> None:
    error = login_refused(text)
    assert type(error) is LoginError
    assert (error.message, error.hint) == (message, hint)


def test_a_login_the_gateway_no_longer_knows_is_its_own_error() -> None:
    error = login_refused("Invalid or expired state")
    assert isinstance(error, LoginStateUnknown)
    assert error.message == "Invalid or expired state"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Illegal header value b'Bearer abc'", "an HTTP header could not be sent"),
        ("HEADER too long", "an HTTP header could not be sent"),
        ("sent Bearer abc.def to gw", "sent Bearer <redacted> to gw"),
        ("token=xyz and Authorization: zzz", "token=<redacted> and Authorization: <redacted>"),
        ("TOKEN xyz", "TOKEN <redacted>"),
        ("nothing secret", "nothing secret"),
    ],
)
def test_an_exception_s_text_loses_anything_that_may_be_a_credential(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_the_gateway_s_error_and_message_are_each_cut_to_300_characters() -> None:
    from rgw.client.answers import error_text

    error, message = error_text(answer(400, json={"error": "e" * 400, "message": "m" * 400}))
    assert (error, message) == ("e" * 299 + "…", "m" * 299 + "…")
    assert error_text(answer(400, text="t" * 400 + "\nsecond")) == ("t" * 300, None)


def test_an_empty_message_is_no_message() -> None:
    from rgw.client.answers import error_text

    assert error_text(answer(400, json={"error": "bad", "message": ""})) == ("bad", None)


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"oops, not markup", {"Content-Type": "text/html"}),
        (b"  \n<p>an error page</p>", {"Content-Type": "text/plain"}),
        (b"<p>an error page</p>", {}),
    ],
)
def test_an_html_page_is_never_taken_for_the_gateway_s_words(content: bytes, headers: dict[str, str]) -> None:
    from rgw.client.answers import error_text

    response = httpx.Response(500, content=content, headers=headers, request=httpx.Request("GET", URL))
    assert error_text(response) == ("", None)


def test_a_json_error_body_is_read_only_to_its_first_4_kib() -> None:
    from rgw.client.answers import error_text

    body = '{"error": "' + "e" * (4097 - len('{"error": ""}')) + '"}'
    assert len(body) == 4097
    error, _ = error_text(answer(400, text=body, headers={"Content-Type": "application/json"}))
    assert error.startswith('{"error": "eee')  # not parsed: shown as text, cut


def test_an_answer_without_a_content_type_is_no_usable_message() -> None:
    response = httpx.Response(500, content=b"", request=httpx.Request("GET", URL))
    assert "content-type" not in response.headers
    with pytest.raises(GatewayError, match=r"^gateway error \(HTTP 500, no usable message\)$"):
        check_response(response)


def test_the_session_s_refusal_reason_is_cut_to_200_characters() -> None:
    with pytest.raises(AuthenticationError) as caught:
        check_response(answer(401, headers={"X-Error-Reason": "r" * 300}))
    assert caught.value.reason == "r" * 199 + "…"


@pytest.mark.anyio
async def test_in_a_run_what_a_request_carries_becomes_a_secret_of_the_run() -> None:
    import anyio

    from rgw.client.answers import remember_sent
    from rgw.text import run_secrets, start_run_secrets

    request = httpx.Request("GET", URL, headers={"Authorization": "Bearer rgw_sess_abcdefgh"})
    kept: list[set[str]] = []

    async def inside() -> None:  # a task of its own: the run's secrets stay in its context
        start_run_secrets(set())
        await remember_sent(request)
        kept.append(run_secrets())

    async with anyio.create_task_group() as tg:
        tg.start_soon(inside)
    assert kept == [{"rgw_sess_abcdefgh"}]
