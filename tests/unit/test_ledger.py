"""rgw.login.ledger.MfaLedger: answers counted per gateway and user, shared through a file, failing safe."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rgw.errors import MfaFailed
from rgw.login.ledger import LEDGER_FILE, MfaLedger

pytestmark = pytest.mark.anyio
URL = "https://gw.example.com"
ORIGIN = "https://gw.example.com:443"


async def fail(ledger: MfaLedger, times: int, kind: str = "code") -> None:
    for _ in range(times):
        await ledger.check(kind)
        await ledger.record(kind, False)


async def test_four_failures_and_no_fifth(tmp_path: Path) -> None:
    ledger = MfaLedger(URL, tmp_path, user="dev@example.com")
    await fail(ledger, 4)
    with pytest.raises(MfaFailed, match="4 failed MFA attempts") as info:
        await ledger.check("code")
    assert "Wait until " in info.value.hint
    # Another process (another ledger on the same directory) is held back too.
    with pytest.raises(MfaFailed):
        await MfaLedger(URL, tmp_path, user="dev@example.com").check("code")


async def test_five_answers_of_one_kind_and_no_sixth(tmp_path: Path) -> None:
    ledger = MfaLedger(URL, tmp_path, user="dev@example.com")
    for _ in range(5):
        await ledger.check("code")
        await ledger.record("code", True)
    with pytest.raises(MfaFailed, match="accepts 5 MFA attempts"):
        await ledger.check("code")
    await ledger.check("webauthn")  # another kind has its own count


async def test_entries_are_kept_by_gateway_and_user(tmp_path: Path) -> None:
    await fail(MfaLedger(URL, tmp_path, user="Dev@Example.com"), 4)
    await MfaLedger(URL, tmp_path, user="other@example.com").check("code")  # another user: not locked out
    await MfaLedger("https://other.example.com", tmp_path, user="dev@example.com").check("code")
    data = json.loads((tmp_path / LEDGER_FILE).read_text())
    assert list(data) == [f"{ORIGIN} dev@example.com"]


async def test_answers_of_an_unknown_user_count_for_every_user(tmp_path: Path) -> None:
    await fail(MfaLedger(URL, tmp_path), 4)  # a login: the user is not known yet
    with pytest.raises(MfaFailed):
        await MfaLedger(URL, tmp_path, user="dev@example.com").check("code")
    assert list(json.loads((tmp_path / LEDGER_FILE).read_text())) == [ORIGIN]


async def test_an_unknown_user_counts_every_users_answers(tmp_path: Path) -> None:
    await fail(MfaLedger(URL, tmp_path, user="a@example.com"), 2)
    await fail(MfaLedger(URL, tmp_path, user="b@example.com"), 2)
    with pytest.raises(MfaFailed):
        await MfaLedger(URL, tmp_path).check("code")


async def test_old_origin_only_entries_count_and_stale_ones_go(tmp_path: Path) -> None:
    now = time.time()
    old = {ORIGIN: [[now - 10, 0, "code"]] * 4, "https://gone.example.com:443": [[now - 400, 0, "code"]]}
    (tmp_path / LEDGER_FILE).write_text(json.dumps(old))
    ledger = MfaLedger(URL, tmp_path, user="dev@example.com")
    with pytest.raises(MfaFailed):
        await ledger.check("code")
    expired = {ORIGIN: [[now - 400, 0, "code"]] * 4, f"{ORIGIN} dev@example.com": [[now - 301, 0, "code"]]}
    (tmp_path / LEDGER_FILE).write_text(json.dumps(expired))
    await ledger.check("code")
    assert json.loads((tmp_path / LEDGER_FILE).read_text()) == {}


async def test_garbage_entries_are_ignored(tmp_path: Path) -> None:
    now = time.time()
    (tmp_path / LEDGER_FILE).write_text(json.dumps({ORIGIN: [[now, 0, "sms"], "x", [now, 2, "code"], None]}))
    await MfaLedger(URL, tmp_path).check("code")


async def test_without_a_directory_this_process_counts_alone(tmp_path: Path) -> None:
    ledger = MfaLedger(URL, None, user="dev@example.com")
    await fail(ledger, 4)
    with pytest.raises(MfaFailed):
        await ledger.check("code")
    assert not ledger.unusable


@pytest.mark.parametrize("how", ["directory", "symlink"])
async def test_an_unusable_file_is_said_once_and_allows_one_failure(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rgw")
    path = tmp_path / LEDGER_FILE
    if how == "directory":
        path.mkdir()
    else:
        (tmp_path / "elsewhere").write_text("{}")
        path.symlink_to(tmp_path / "elsewhere")
    heard: list[str] = []
    ledger = MfaLedger(URL, tmp_path, user="dev@example.com", on_warning=heard.append)
    await ledger.check("code")
    await ledger.record("code", True)  # an accepted answer does not use up the one try
    await ledger.check("code")
    await ledger.record("code", False)
    with pytest.raises(MfaFailed, match="one failed try is all this one allows") as info:
        await ledger.check("code")
    assert str(path) in info.value.hint
    assert len(heard) == 1
    assert heard[0].startswith(f"Warning: cannot use {path} (")
    assert "one MFA try" in heard[0]
    assert [r.getMessage() for r in caplog.records if "ledger:" in r.getMessage()] == [f"ledger: {heard[0]}"]  # -v
    assert (tmp_path / "elsewhere").read_text() == "{}" if how == "symlink" else path.is_dir()


# -- issue 20, item 6: a time in the file cannot switch the ledger off, refuse codes for years, or crash


def _strict(text: str) -> object:
    """JSON as any other tool reads it: ``NaN`` or ``Infinity`` in the file is a failure here."""

    def refuse(name: str) -> object:
        raise AssertionError(f"{name} written to the ledger")

    return json.loads(text, parse_constant=refuse)


#: Stamps no answer of the last five minutes can carry: year 33658, infinity, year 2100, the epoch...
OUT_OF_BOUNDS = ["1e12", "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "4102444800", "-1e12", "0", "1" + "0" * 40]


@pytest.mark.parametrize("stamp", OUT_OF_BOUNDS)
async def test_entries_stamped_out_of_bounds_are_dropped(tmp_path: Path, stamp: str) -> None:
    entries = ", ".join([f'[{stamp}, 0, "code"]'] * 4 + [f'[{stamp}, 1, "code"]'] * 5)
    (tmp_path / LEDGER_FILE).write_text(f'{{"{ORIGIN}": [{entries}], "https://other:443": [[{stamp}, 0, "code"]]}}')
    ledger = MfaLedger(URL, tmp_path, user="dev@example.com")
    await ledger.check("code")  # neither a traceback nor a refusal
    await ledger.record("code", False)
    now = time.time()
    data = _strict((tmp_path / LEDGER_FILE).read_text())
    assert isinstance(data, dict)
    assert list(data) == [f"{ORIGIN} dev@example.com"]  # nothing out of bounds is written back
    ((stamped, ok, kind),) = data[f"{ORIGIN} dev@example.com"]
    assert now - 5 < stamped <= now + 1  # (rounded to the millisecond)
    assert (ok, kind) == (0, "code")


async def test_a_clock_stepped_back_keeps_counting_within_the_window(tmp_path: Path) -> None:
    # Answers stamped up to a window ahead (the clock stepped back since) still count, and the wait
    # the user is told stays within two windows; further ahead they are dropped.
    now = time.time()
    ahead = {ORIGIN: [[now + 200, 0, "code"]] * 4}
    (tmp_path / LEDGER_FILE).write_text(json.dumps(ahead))
    with pytest.raises(MfaFailed, match="4 failed MFA attempts") as info:
        await MfaLedger(URL, tmp_path).check("code")
    assert "Wait until " in info.value.hint
    (tmp_path / LEDGER_FILE).write_text(json.dumps({ORIGIN: [[now + 400, 0, "code"]] * 4}))
    await MfaLedger(URL, tmp_path).check("code")
    assert _strict((tmp_path / LEDGER_FILE).read_text()) == {}


@pytest.mark.parametrize("content", ['{"a": ' * 100_000 + "1" + "}" * 100_000, "[" * 100_000, "1" * 5000])
async def test_a_ledger_file_nested_too_deep_or_too_long_is_empty_not_fatal(tmp_path: Path, content: str) -> None:
    (tmp_path / LEDGER_FILE).write_text(content)
    await MfaLedger(URL, tmp_path).check("code")
    assert _strict((tmp_path / LEDGER_FILE).read_text()) == {}


# -- issue 24: what the user is told, and what the file keeps


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone other than UTC: the waits the user is told are in UTC whatever it is."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york")
async def test_the_wait_before_a_fifth_failure_ends_when_the_oldest_counted_failure_leaves_the_window(
    tmp_path: Path,
) -> None:
    now = time.time()
    stamps = [now - 40, now - 10, now - 30, now - 20]  # the oldest of the 4 is what the fifth waits for
    (tmp_path / LEDGER_FILE).write_text(json.dumps({ORIGIN: [[s, 0, "code"] for s in stamps]}))
    with pytest.raises(MfaFailed) as info:
        await MfaLedger(URL, tmp_path, user="dev@example.com").check("code")
    assert str(info.value) == (
        "not sending another MFA code: 4 failed MFA attempts at this gateway in the last 5 minutes, "
        "and a 5th locks your account until an administrator unlocks it"
    )
    assert info.value.hint == f"Wait until {_utc(now - 40 + 300)}, then try again."
    # With 5 failures known (another process sent one more), it is the second oldest that must leave.
    (tmp_path / LEDGER_FILE).write_text(json.dumps({ORIGIN: [[s, 0, "code"] for s in [*stamps, now - 5]]}))
    with pytest.raises(MfaFailed) as info:
        await MfaLedger(URL, tmp_path).check("code")
    assert info.value.hint == f"Wait until {_utc(now - 30 + 300)}, then try again."


@pytest.mark.usefixtures("new_york")
async def test_the_wait_before_a_sixth_answer_of_a_kind_ends_when_the_fifth_newest_leaves_the_window(
    tmp_path: Path,
) -> None:
    now = time.time()
    stamps = [now - 50, now - 60, now - 10, now - 30, now - 20, now - 40]
    entries = [[s, 1, "webauthn"] for s in stamps] + [[now - 5, 1, "code"]]
    (tmp_path / LEDGER_FILE).write_text(json.dumps({f"{ORIGIN} dev@example.com": entries}))
    ledger = MfaLedger(URL, tmp_path, user="dev@example.com")
    await ledger.check("code")  # one code sent: another kind's count
    with pytest.raises(MfaFailed) as info:
        await ledger.check("webauthn")
    assert str(info.value) == (
        "not sending another MFA code: the gateway accepts 5 MFA attempts per 5 minutes "
        "and would refuse this one (and count it as a failure)"
    )
    assert info.value.hint == f"Wait until {_utc(now - 50 + 300)}, then try again."


async def test_an_unusable_ledger_refuses_a_second_failure_saying_why(tmp_path: Path) -> None:
    (tmp_path / LEDGER_FILE).mkdir()
    heard: list[str] = []
    ledger = MfaLedger(URL, tmp_path, on_warning=heard.append)
    await ledger.check("code")
    await ledger.record("code", False)
    with pytest.raises(MfaFailed) as info:
        await ledger.check("code")
    assert str(info.value) == (
        "not sending another MFA code: the MFA attempts of other processes cannot be counted "
        f"({LEDGER_FILE} is unusable), so one failed try is all this one allows"
    )
    assert heard[0].endswith(
        ": MFA answers other rack-gateway processes sent are not known, so this one allows itself one MFA try."
    )


async def test_an_answer_is_counted_when_the_file_becomes_unusable_between_check_and_record(tmp_path: Path) -> None:
    heard: list[str] = []
    ledger = MfaLedger(URL, tmp_path, on_warning=heard.append)
    await ledger.check("code")  # the file was usable then
    (tmp_path / LEDGER_FILE).unlink()
    (tmp_path / LEDGER_FILE).mkdir()
    await ledger.record("code", False)
    assert ledger.unusable
    assert len(heard) == 1
    with pytest.raises(MfaFailed, match="one failed try is all this one allows"):
        await ledger.check("code")


async def test_webauthn_answers_in_the_file_are_counted_by_their_kind(tmp_path: Path) -> None:
    now = time.time()
    (tmp_path / LEDGER_FILE).write_text(json.dumps({ORIGIN: [[now - 10, 1, "webauthn"]] * 5}))
    ledger = MfaLedger(URL, tmp_path)
    await ledger.check("code")
    with pytest.raises(MfaFailed, match="accepts 5 MFA attempts"):
        await ledger.check("webauthn")


async def test_the_ledger_file_keeps_each_answer_s_time_to_the_millisecond(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = round(time.time()) + 0.123456789  # kept as 0.123: neither 0.1235 nor a whole second
    monkeypatch.setattr(time, "time", lambda: now)
    await MfaLedger(URL, tmp_path).record("code", True)
    assert json.loads((tmp_path / LEDGER_FILE).read_text()) == {ORIGIN: [[round(now, 3), 1, "code"]]}
