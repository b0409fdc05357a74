"""Fuzzing every time rgw reads, and both ledgers that store times (issue 20, items 1, 6 and 12).

Times come from a gateway (``expires_at`` of a login, ``X-Session-Expires-At``, ``/info``, the MFA
status, ``Retry-After``) and from files (``config.json``'s ``expires_at``, ``mfa-attempts.json``,
``rate-budget.json``).  Whatever they hold: no traceback, a time rgw uses or stores is within its
bounds (``rgw.models.EARLIEST``/``LATEST``; now ± the window for the ledgers), and what is written
back to a ledger is strict JSON (no ``NaN``/``Infinity``) with every time in bounds.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rgw.cli import run
from rgw.cli.app import App, Options, expiry_moved
from rgw.cli.auth import format_expiry
from rgw.cli.mfa_status import _when
from rgw.cli.style import time_left
from rgw.client import GatewayClient
from rgw.client.answers import retry_after_of
from rgw.client.budget import BUDGET_FILE, MAX_HORIZON, STALE, RequestBudget
from rgw.errors import MfaFailed
from rgw.login.ledger import LEDGER_FILE, WINDOW, MfaLedger
from rgw.models import EARLIEST, LATEST, DeviceInfo, LoginStart, Session, parse_time, time_text
from rgw.urls import origin
from tests.fuzzing import fuzz_settings

pytestmark = pytest.mark.anyio

URL = "https://gw.example.com"
KEY = origin(URL)
TOKEN = "rgw_sess_fuzzTOKENfuzzTOKENfuzzTOKENfuzz"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # file I/O in worker threads and MockTransport: nothing here differs between backends


# -- times as text -------------------------------------------------------------------------------

offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda m: "Z" if m == 0 else f"{'+' if m > 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
)
#: RFC 3339 texts of any year datetime holds, with any offset: the edges overflow once in UTC.
rfc3339 = st.builds(lambda moment, offset: moment.isoformat() + offset, st.datetimes(), offsets)
EDGES = [
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999-23:59",
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
    "2999-12-31T23:59:59.999999Z",
    "3000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00.1234567890123Z",
    "２０２６-01-01T00:00:00Z",
    "2026-01-01",
    "20260101T000000Z",
    " 2026-01-01T00:00:00Z ",
    "2026-01-01T00:00:00\x00Z",
    "2026-01-01T00:00:00Z" * 10,
]
time_texts = rfc3339 | st.sampled_from(EDGES) | st.text(max_size=40)
anything = st.none() | st.booleans() | st.integers() | st.floats() | time_texts | st.lists(st.integers(), max_size=2)


def in_bounds(moment: datetime) -> bool:
    return moment.tzinfo == UTC and EARLIEST <= moment < LATEST


@fuzz_settings(500)
@given(value=anything)
@example(value="9999-12-31T23:59:59-01:00")
def test_parse_time_gives_a_time_in_bounds_or_none(value: object) -> None:
    parsed = parse_time(value)
    assert parsed is None or in_bounds(parsed)
    if parsed is not None:  # anything rgw does with a time works on it
        parsed.timestamp()
        parsed.strftime("%Y-%m-%d %H:%M:%S UTC")
        _ = parsed - datetime.now(UTC)
    assert time_text(value) == (value if parsed is not None else None)


@fuzz_settings(300)
@given(moment=st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(2998, 12, 30)), offset=offsets)
def test_every_time_within_the_bounds_is_read_exactly(moment: datetime, offset: str) -> None:
    parsed = parse_time(moment.isoformat() + offset)
    minutes = 0 if offset == "Z" else (int(offset[1:3]) * 60 + int(offset[4:6])) * (1 if offset[0] == "+" else -1)
    assert parsed == moment.replace(tzinfo=UTC) - timedelta(minutes=minutes)


@fuzz_settings(300)
@given(value=anything, stored=anything)
def test_every_way_a_time_is_shown_or_compared_works(value: Any, stored: Any) -> None:
    now = datetime.now(UTC)
    text = value if isinstance(value, str) else None
    left = time_left(text, now)
    assert isinstance(left, str)
    if text and parse_time(text) is None:
        assert left == "expiry unknown"
    assert format_expiry(text) == ("unknown" if parse_time(text) is None else format_expiry(text))
    assert isinstance(_when(value), str)
    moved = expiry_moved(stored if isinstance(stored, str) else None, text or "")
    assert moved is False or parse_time(text) is not None  # an expiry out of range is never stored


@fuzz_settings(200)
@given(
    value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
    | st.sampled_from(["nan", "NaN", "inf", "-inf", "1e999", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "0x10", "1_000"])
)
def test_retry_after_is_a_finite_number_of_seconds_or_none(value: str) -> None:
    seconds = retry_after_of(httpx.Response(429, headers={"Retry-After": value}))
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


header_times = time_texts.filter(lambda t: t.isascii() and t.isprintable() and t == t.strip() and "\x00" not in t)


@fuzz_settings(200)
@given(header=header_times, body=anything.filter(lambda v: not (isinstance(v, float) and not math.isfinite(v))))
async def test_a_gateways_times_are_kept_only_in_bounds(header: str, body: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"X-Session-Expires-At": header} if header else {}
        if request.url.path == "/api/v1/auth/cli/complete":
            return httpx.Response(
                200, json={"token": TOKEN, "email": "dev@example.com", "expires_at": body}, headers=headers
            )
        return httpx.Response(200, json={"user": {}, "session": {"expires_at": body}}, headers=headers)

    device = DeviceInfo("8f4c4b8c-0000-4000-8000-000000000000", "host", "linux/x86_64", "rgw-python/test")
    start = LoginStart("https://gw.example.com/oauth", "s" * 43, "v" * 128)
    with anyio.fail_after(10):
        async with GatewayClient(URL, token=TOKEN, transport=httpx.MockTransport(handler)) as client:
            await client.info()
            session = await client.complete_login(start, device)
    assert isinstance(session, Session)
    for kept in (client.session_expires_at, session.expires_at):
        assert kept is None or parse_time(kept) is not None
    assert session.expires_at == time_text(body)


# -- config.json with any expires_at: the commands that show it -------------------------------------

stored_times = st.none() | st.booleans() | st.integers() | st.floats() | time_texts


@fuzz_settings(60)
@given(
    value=stored_times,
    args=st.sampled_from([["racks"], ["racks", "--json"], ["status", "--offline"], ["status", "--offline", "--json"]]),
)
async def test_any_stored_expiry_is_shown_or_unknown_never_a_traceback(value: Any, args: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="rgw-fuzz-") as tmp:
        directory = Path(tmp)
        os.chmod(directory, 0o700)
        rack = {"url": URL, "token": TOKEN, "email": "dev@example.com", "expires_at": value}
        (directory / "config.json").write_text(json.dumps({"current": "prod", "gateways": {"prod": rack}}))
        os.chmod(directory / "config.json", 0o600)
        out, err = io.StringIO(), io.StringIO()
        app = App(options=Options(config_dir=directory), environ={}, out=out, err=err, interactive=False)
        with anyio.fail_after(10):
            code = await run(args, obj=app)
    assert code == 0, err.getvalue()
    assert "Traceback" not in err.getvalue()
    if "--json" in args:
        shown = json.loads(out.getvalue())
        entry = shown[0] if isinstance(shown, list) else shown["racks"][0]
        assert entry["expires_at"] == time_text(value)
    elif isinstance(value, str) and value and parse_time(value) is None:
        assert "expiry unknown" in out.getvalue()


# -- the two ledgers: any content -------------------------------------------------------------------

#: Numbers a file may hold where a time goes, as JSON text: out of bounds, not finite, huge, fine.
stamp_texts = (
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "-1e999",
            "1e12",
            "4102444800",
            "0",
            "1" + "0" * 40,
            "true",
            "null",
            '"x"',
            "[]",
        ]
    )
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.integers(-(10**20), 10**20).map(str)
    | st.integers(-2 * int(WINDOW), 2 * int(WINDOW)).map(lambda d: "NOW" + ("+" if d >= 0 else "-") + str(abs(d)))
)
ledger_entries = st.lists(
    st.tuples(
        stamp_texts,
        st.sampled_from(["0", "1", "2", "true", "0.5"]),
        st.sampled_from(['"code"', '"webauthn"', '"sms"', "1"]),
    ).map(lambda e: f"[{e[0]}, {e[1]}, {e[2]}]")
    | st.sampled_from(['"x"', "null", "[]", "{}", "[1, 0]"]),
    max_size=8,
).map(lambda entries: "[" + ", ".join(entries) + "]")
ledger_keys = st.sampled_from([KEY, f"{KEY} dev@example.com", f"{KEY} other@example.com", "https://other:443", ""])
ledger_files = (
    st.dictionaries(ledger_keys, ledger_entries | st.sampled_from(["1", "null", '"x"', "{}"]), max_size=4).map(
        lambda d: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in d.items()) + "}"
    )
    | st.binary(max_size=60).map(lambda b: b.decode("latin-1"))
    | st.sampled_from(["[" * 5000, '{"a":' * 5000, "1" * 5000])
)


def _with_now(text: str, now: float) -> str:
    """``NOW+12`` in a drawn file is a time relative to when the example runs."""
    import re

    return re.sub(r"NOW([+-])(\d+)", lambda m: repr(now + (1 if m[1] == "+" else -1) * int(m[2])), text)


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} written back")

    return json.loads(text, parse_constant=refuse)


@fuzz_settings(200)
@given(content=ledger_files, user=st.sampled_from([None, "dev@example.com"]), ok=st.booleans())
async def test_any_mfa_ledger_counts_or_refuses_and_writes_only_times_in_bounds(
    content: str, user: str | None, ok: bool
) -> None:
    with tempfile.TemporaryDirectory(prefix="rgw-fuzz-") as tmp:
        directory = Path(tmp)
        now = time.time()
        (directory / LEDGER_FILE).write_text(_with_now(content, now))
        ledger = MfaLedger(URL, directory, user=user)
        with anyio.fail_after(10):
            refused: MfaFailed | None = None
            try:
                await ledger.check("code")
            except MfaFailed as exc:
                refused = exc
            await ledger.record("code", ok)
        assert refused is None or "Wait until " in (refused.hint or "")
        assert not ledger.unusable
        data = _strict((directory / LEDGER_FILE).read_text())
        after = time.time()
    assert isinstance(data, dict)
    for entries in data.values():
        assert isinstance(entries, list)
        assert entries
        for stamp, answer, kind in entries:
            assert isinstance(stamp, int | float)
            assert not isinstance(stamp, bool)
            assert now - WINDOW - 1 < stamp <= after + WINDOW
            assert answer in (0, 1)
            assert kind in ("code", "webauthn")


budget_files = st.dictionaries(
    st.sampled_from([KEY, "https://other:443", "http://127.0.0.1:1", ""]),
    st.builds(lambda tat: '{"tat": ' + tat + "}", stamp_texts) | st.sampled_from(["1", "null", "[]", '{"x": 1}']),
    max_size=4,
).map(lambda d: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in d.items()) + "}") | st.binary(max_size=60).map(
    lambda b: b.decode("latin-1")
)


@fuzz_settings(200)
@given(content=budget_files, priority=st.booleans(), slots=st.integers(1, 3), penalize=st.booleans())
async def test_any_budget_file_gives_a_bounded_wait_and_writes_only_times_in_bounds(
    content: str, priority: bool, slots: int, penalize: bool
) -> None:
    with tempfile.TemporaryDirectory(prefix="rgw-fuzz-") as tmp:
        directory = Path(tmp)
        now = time.time()
        (directory / BUDGET_FILE).write_text(_with_now(content, now))
        budget = RequestBudget(URL, directory)
        with anyio.fail_after(10):
            if penalize:
                await budget.penalize(1.0)
            slot = await budget.reserve(priority=priority, slots=slots)
        assert not budget.unusable
        data = _strict((directory / BUDGET_FILE).read_text())
        after = time.time()
    assert math.isfinite(slot.delay)
    assert 0 <= slot.delay <= MAX_HORIZON + 3  # the horizon, and a 429's pause with this request's slots
    assert isinstance(data, dict)
    assert KEY in data
    for entry in data.values():
        assert list(entry) == ["tat"]
        assert now - STALE < entry["tat"] <= after + MAX_HORIZON + 3


@fuzz_settings(100)
@given(started=stamp_texts)
async def test_a_pending_logins_start_time_is_in_bounds_or_the_record_is_dropped(started: str) -> None:
    from rgw.login.pending import RESUME_MAX_AGE, PendingLogins

    with tempfile.TemporaryDirectory(prefix="rgw-fuzz-") as tmp:
        directory = Path(tmp)
        pending = PendingLogins(directory, "prod", URL)
        now = time.time()
        record = {"format": 1, "rack": "prod", "url": URL, "auth_url": "https://idp.example.com/a", "started_at": 0}
        record.update({"state": "s" * 43, "code_verifier": "v" * 64})
        text = json.dumps(record).replace('"started_at": 0', f'"started_at": {_with_now(started, now)}')
        pending.path.write_text(text)
        with anyio.fail_after(10):
            found = await pending.load()
        assert found is None or now - RESUME_MAX_AGE < found.started_at <= time.time()
        assert found is not None or not pending.path.exists()  # dropped, not left to trip the next run
