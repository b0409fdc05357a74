"""A gateway's error text is scrubbed of every secret its request carried (issue 20, item 9)."""

from __future__ import annotations

import contextvars
import json

import httpx
import pytest

from rgw.client.answers import carried_secrets, error_text
from rgw.text import keep_secrets, start_run_secrets

STATE = "STATE-SECRET-" + "s" * 30
VERIFIER = "VERIFIER-SECRET-" + "v" * 60
TOKEN = "rgw_sess_" + "t" * 40


def answered(status: int, request: httpx.Request, **content: object) -> httpx.Response:
    return httpx.Response(status, request=request, **content)  # type: ignore[arg-type]


def complete_request() -> httpx.Request:
    body = {"state": STATE, "code_verifier": VERIFIER, "device_id": "d-1", "device_name": "vm"}
    return httpx.Request("POST", "https://gw.example.com/api/v1/auth/cli/complete", json=body)


def test_a_request_carries_its_credential_its_mfa_headers_and_its_body_secrets() -> None:
    step_up = httpx.Request(
        "DELETE",
        "https://gw.example.com/api/v1/apps/x",
        headers={"Authorization": f"Bearer {TOKEN}.totp.246813", "X-Mfa-Totp": "135790"},
    )
    assert carried_secrets(step_up) == {f"{TOKEN}.totp.246813", TOKEN, "246813", "135790"}
    mfa = httpx.Request("POST", "https://gw/api/v1/auth/cli/mfa", json={"state": STATE, "method": "totp", "code": "1"})
    assert carried_secrets(mfa) == {STATE}  # a 1-character "code" is too short to take out of any text
    assert carried_secrets(complete_request()) == {STATE, VERIFIER}
    assert carried_secrets(httpx.Request("GET", "https://gw/api/v1/info")) == set()


@pytest.mark.parametrize("padding", [0, 250, 290, 299, 4090])
def test_a_text_body_echoing_the_request_is_scrubbed_before_it_is_cut(padding: int) -> None:
    # The cut at 300 characters (or at the 4 KiB read) must never leave the first part of a secret.
    echo = "x" * padding + f"state: {STATE} code_verifier: {VERIFIER}"
    error, message = error_text(answered(503, complete_request(), text=echo))
    assert message is None
    assert "SECRET" not in error
    assert error.startswith("x" * min(padding, 299))


def test_a_json_body_echoing_the_request_is_scrubbed_in_error_and_message() -> None:
    request = complete_request()
    body = {"error": {"echo": json.loads(request.content)}, "message": f"you sent {request.content.decode()}"}
    error, message = error_text(answered(400, request, json=body))
    assert "SECRET" not in error + (message or "")
    assert "<redacted>" in error
    assert message is not None
    assert "<redacted>" in message


def test_the_runs_secrets_are_scrubbed_from_an_answer_whose_request_did_not_carry_them() -> None:
    def in_a_run() -> tuple[str, str | None]:
        start_run_secrets(set())
        keep_secrets(["246813", TOKEN])
        request = httpx.Request("GET", "https://gw.example.com/api/v1/info")
        return error_text(answered(500, request, json={"error": f"code 246813 was for {TOKEN}"}))

    error, _message = contextvars.Context().run(in_a_run)
    assert error == "code <redacted> was for <redacted>"
