"""Fuzzing every route's answer handling: any status, headers and body give a result or an ``RgwError``.

Each example calls one ``GatewayClient`` method against an ``httpx.MockTransport`` whose every
answer (first try, retries, redirects, step-up retries) is drawn afresh: random statuses, headers
that matter (``Location``, ``Retry-After``, ``X-MFA-Required``, ``Content-Encoding``, ...) with
hostile values, and bodies that are arbitrary bytes, arbitrary JSON, or the route's own shape with
wrong types inside.  The answers go through the client's real ``BoundedTransport`` and
``StepUpAuth``.  The outcome must be the method's documented result type or an ``RgwError`` with a
non-generic exit code whose text carries neither the token nor a raw control character, within a
deadline (``anyio.fail_after``), never another exception.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rgw.client import GatewayClient
from rgw.client.transport import MAX_BODY
from rgw.errors import RgwError
from rgw.models import DeviceInfo, LoginPending, LoginStart, Session
from rgw.retry import RetryPolicy
from tests.fuzzing import fuzz_settings

pytestmark = pytest.mark.anyio

TOKEN = "rgw_sess_fuzzTOKENfuzzTOKENfuzzTOKENfuzzTOKENfuz"
BASE = "https://gw.example.com"
DEVICE = DeviceInfo("8f4c4b8c-0000-4000-8000-000000000000", "host", "linux/x86_64", "rgw-python/test")
START = LoginStart("https://gw.example.com/oauth", "s" * 43, "v" * 128, loopback=True)
TOKEN_ID = "0b9e4a52-3f7c-4a4e-9d0b-6a1c2e3f4a5b"
#: Requests one call may make at most: retries (3) x redirects (4) x step-up tries (5), and then some.
MAX_REQUESTS = 80


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # MockTransport and anyio primitives only: the backends do not differ here


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


json_values = st.recursive(scalars, _containers, max_leaves=12)
hostile_text = st.sampled_from(
    ["", " ", "\x1b[2J\x1b[H", "evil\r\nX-Injected: 1", "\u202eadmin", "a" * 5000, "null", "0"]
) | st.text(max_size=40)
#: Every key some route reads, so that any route may see any route's shape.
KEYS = (
    "auth_url",
    "state",
    "code_verifier",
    "loopback",
    "status",
    "stage",
    "mfa_methods",
    "token",
    "email",
    "name",
    "expires_at",
    "session_id",
    "channel",
    "device_id",
    "device_name",
    "mfa_verified",
    "mfa_required",
    "enrollment_required",
    "error",
    "message",
    "redirect",
    "user",
    "rack",
    "roles",
    "integrations",
    "version",
    "provider",
    "region",
    "generation",
    "release",
    "enrolled",
    "required",
    "methods",
    "recent_step_up_expires_at",
    "preferred_method",
    "options",
    "session_data",
    "tokens",
    "id",
    "public_id",
    "permissions",
    "user_id",
    "created_at",
    "last_used_at",
    "created_by_email",
    "revoked",
    "default_permissions",
    "user_roles",
    "user_permissions",
    "api_token",
    "publicKey",
)


def _shaped_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.dictionaries(st.sampled_from(KEYS), inner | json_values | hostile_text, max_size=6) | st.lists(
        inner, max_size=3
    )


shaped = st.recursive(
    st.dictionaries(st.sampled_from(KEYS), json_values | hostile_text, max_size=8), _shaped_containers, max_leaves=6
)
STATUSES = (200, 201, 202, 204, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 409, 429, 500, 502, 503, 504)
statuses = st.sampled_from(STATUSES) | st.integers(100, 599)
CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "text/plain", "text/html", "", "x/y")
header_values = hostile_text | st.sampled_from(
    [
        "step-up",
        "always",
        "enrollment",
        "true",
        "step_up",
        "0",
        "-1",
        "1e309",
        "nan",
        "inf",
        "/",
        "//evil.example",
        "https://evil.example.net/x",
        "http://[::1",
        "https://gw.example.com:99999/x",
        "/api/v1/info",
        "gzip",
        "deflate",
        "br",
        "gzip, gzip",
        "2024-02-15T10:30:00Z",
    ]
)
header_names = st.sampled_from(
    [
        "location",
        "retry-after",
        "x-mfa-required",
        "x-mfa-level",
        "x-error-reason",
        "x-session-expires-at",
        "x-ratelimit-limit",
        "content-encoding",
        "set-cookie",
    ]
) | st.from_regex(r"\Ax-[a-z]{1,8}\Z")


def _latin1(text: str) -> bytes:
    """A header value as the wire could carry it: no CR, LF or NUL (h11 refuses those)."""
    return "".join(c for c in text if c not in "\r\n\x00").encode("utf-8")[:500]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _body(kind: str, value: Any, raw: bytes) -> bytes:
    if kind == "bytes":
        return raw
    text = json.dumps(value, allow_nan=True).encode()
    if kind == "json-truncated":
        return text[: len(text) // 2]
    return text


LOCATIONS = (
    "/api/v1/info",
    "/api/v1/other",
    "",
    "/",
    "//evil.example",
    "https://evil.example.net/x",
    "http://[::1",
    "https://gw.example.com:99999/x",
    "https://gw.example.com:443/x",
    "http://gw.example.com/x",
    "https://gw.example.com/\x1b[2J",
    "https://user:pass@gw.example.com/x",
    "https:///x",
    "https://[v1.x]/",
    "javascript:alert(1)",
    "https://gw.example.com:-1/",
    "https://gw.example.com:abc/",
    "\u0000",
    "a" * 3000,
)
#: Headers that steer the client, together, with the statuses they go with.
steering = st.one_of(
    st.tuples(
        st.sampled_from([301, 302, 303, 307, 308]), st.just("location"), st.sampled_from(LOCATIONS) | hostile_text
    ),
    st.tuples(st.just(401), st.sampled_from(["x-mfa-required", "x-mfa-level", "x-error-reason"]), header_values),
    st.tuples(st.just(429), st.sampled_from(["retry-after", "x-ratelimit-limit"]), header_values),
    st.tuples(statuses, st.sampled_from(["content-encoding", "x-session-expires-at"]), header_values),
)


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    status = draw(statuses)
    steer = draw(st.none() | steering)
    kind = draw(st.sampled_from(["bytes", "json", "shaped", "json-truncated", "huge", "empty"]))
    if kind == "huge":
        body = b"[" + b"1," * (MAX_BODY // 2) + b"1]"  # just past the cap
    elif kind == "empty":
        body = b""
    else:
        value = draw(shaped if kind == "shaped" else json_values)
        body = _body(kind, value, draw(st.binary(max_size=300)) if kind == "bytes" else b"")
    headers = [(b"content-type", draw(st.sampled_from(CONTENT_TYPES)).encode())]
    if steer is not None:
        status = steer[0]
        headers.append((steer[1].encode(), _latin1(steer[2])))
    for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=3)):
        headers.append((name.encode(), _latin1(value)))
    encoding = dict(headers).get(b"content-encoding")
    if encoding == b"gzip" and draw(st.booleans()):
        body = gzip.compress(body)  # a real gzip body (else: a broken one)
    elif encoding == b"deflate" and draw(st.booleans()):
        body = zlib.compress(body)
    return Answer(status, headers, body)


class Provider:
    """A step-up provider that always has a code (the flow itself bounds the tries)."""

    async def answer(self, level: str, rejection: str | None) -> Mapping[str, str]:
        return {"X-Mfa-Totp": "123456"}

    async def accepted(self) -> None:
        return None


def _dict(value: Any) -> bool:
    return isinstance(value, dict)


def _dicts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _none(value: Any) -> bool:
    return value is None


def _start(value: Any) -> bool:
    return isinstance(value, LoginStart) and all(
        isinstance(v, str) and v for v in (value.auth_url, value.state, value.code_verifier)
    )


def _poll(value: Any) -> bool:
    if isinstance(value, LoginPending):
        return all(isinstance(m, str) for m in value.mfa_methods)
    return isinstance(value, Session) and isinstance(value.token, str) and bool(value.token)


Call = Callable[[GatewayClient], Awaitable[Any]]
CALLS: dict[str, tuple[Call, Callable[[Any], bool]]] = {
    "start_login": (lambda c: c.start_login(loopback_uri="http://127.0.0.1:1/x"), _start),
    "complete_login": (lambda c: c.complete_login(START, DEVICE), _poll),
    "complete_login (long poll)": (lambda c: c.complete_login(START, DEVICE, wait=25, seen_stage="mfa"), _poll),
    "submit_login_mfa": (lambda c: c.submit_login_mfa(START.state, "totp", code="123456"), _none),
    "login_webauthn_options": (lambda c: c.login_webauthn_options(START.state), _dict),
    "logout": (lambda c: c.logout(), _none),
    "revoke": (lambda c: c.revoke("rgw_sess_previous"), _none),
    "info (test-auth, rack)": (lambda c: c.info(), _dict),
    "rack_system": (lambda c: c.rack_system(), _dict),
    "apps": (lambda c: c.apps(), _dicts),
    "mfa_status": (lambda c: c.mfa_status(), _dict),
    "step_up_challenge (mfa verify)": (lambda c: c.step_up_challenge(), _dict),
    "list_api_tokens": (lambda c: c.list_api_tokens(), _dicts),
    "get_api_token": (lambda c: c.get_api_token(TOKEN_ID), _dict),
    "get_api_token (not a uuid)": (lambda c: c.get_api_token("../../info?x=\x1b"), _dict),
    "api_token_permissions": (lambda c: c.api_token_permissions(), _dict),
    "create_api_token": (lambda c: c.create_api_token({"name": "ci", "permissions": ["convox:app:list"]}), _dict),
    "delete_api_token": (lambda c: c.delete_api_token(TOKEN_ID), _none),
    "revoke_sessions": (lambda c: c.revoke_sessions(email="a@example.com"), lambda v: type(v) is int),
    "set_mfa_required": (lambda c: c.set_mfa_required("a@example.com", True), _none),
}


def check_error(exc: RgwError) -> None:
    assert exc.exit_code != 1, f"a hostile answer must be classified, not a generic error: {exc!r}"
    for text in (exc.message, exc.hint or ""):
        assert TOKEN not in text


@pytest.mark.parametrize("method", sorted(CALLS))
@fuzz_settings(25)
@given(script=st.lists(answers(), min_size=1, max_size=6), retried=st.booleans())
async def test_every_answer_to_every_route_is_a_result_or_an_rgw_error(
    method: str, script: list[Answer], retried: bool
) -> None:
    """The gateway answers the n-th request with ``script[n % len(script)]``."""
    sent = await outcome(method, script, retried=retried)
    for request in sent:  # the token only ever goes to the gateway's own origin, in the header
        assert request.url.host == "gw.example.com"
        assert TOKEN not in str(request.url)


async def outcome(method: str, script: list[Answer], *, retried: bool = False) -> list[httpx.Request]:
    """Call ``method`` against ``script`` (as above); the requests it sent."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        assert len(sent) <= MAX_REQUESTS, "the client keeps sending: a hostile gateway must not loop it"
        answer = script[(len(sent) - 1) % len(script)]
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

    call, valid = CALLS[method]
    with anyio.fail_after(10):
        async with GatewayClient(
            BASE,
            token=TOKEN,
            transport=httpx.MockTransport(handler),
            step_up=lambda _client: Provider(),
            policy=RetryPolicy.instant(max_attempts=3) if retried else None,
            timeout=8,
        ) as client:
            try:
                result = await call(client)
            except RgwError as exc:
                check_error(exc)
            else:
                assert valid(result), f"{method} returned {result!r}"
    return sent


@fuzz_settings(120)
@given(
    method=st.sampled_from(sorted(CALLS)),
    status=st.sampled_from([301, 302, 303, 307, 308]),
    location=st.sampled_from(LOCATIONS) | hostile_text | st.from_regex(r"\Ahttps?://[a-z.:\[\]0-9-]{0,30}/?\Z"),
    then=answers(),
)
async def test_any_redirect_of_any_route_is_followed_only_to_the_same_origin_or_refused(
    method: str, status: int, location: str, then: Answer
) -> None:
    redirect = Answer(status, [(b"location", _latin1(location))], b"")
    sent = await outcome(method, [redirect, then])
    for request in sent:
        assert (request.url.scheme, request.url.host, request.url.port or 443) == ("https", "gw.example.com", 443)


@fuzz_settings(80)
@given(
    method=st.sampled_from(sorted(CALLS)),
    headers=st.lists(
        st.tuples(st.sampled_from(["x-mfa-required", "x-mfa-level", "x-error-reason", "retry-after"]), header_values),
        min_size=1,
        max_size=3,
    ),
    status=st.sampled_from([401, 403, 429]),
    body=shaped.map(json.dumps),
    then=answers(),
)
async def test_any_mfa_or_rate_limit_signal_on_any_route_is_a_result_or_an_rgw_error(
    method: str, headers: list[tuple[str, str]], status: int, body: str, then: Answer
) -> None:
    signal = Answer(
        status,
        [(b"content-type", b"application/json"), *((n.encode(), _latin1(v)) for n, v in headers)],
        body.encode(),
    )
    await outcome(method, [signal, then], retried=True)
