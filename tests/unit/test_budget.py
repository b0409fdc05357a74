"""The shared request budget: GCRA arithmetic, sharing through the config directory, 429 push-back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from trio.testing import MockClock

from rgw.client.budget import (
    BUDGET_FILE,
    Budgets,
    RequestBudget,
    _Schedule,
    limited_route,
)
from rgw.urls import origin

pytestmark = pytest.mark.anyio
URL = "https://gw.example.com"


def test_schedule_burst_then_one_interval_apart() -> None:
    schedule = _Schedule(rate=5.0, burst=3)
    tat, delays = None, []
    for _ in range(6):
        tat, delay = schedule.take(tat, 100.0, priority=False)
        delays.append(round(delay, 6))
    assert delays == [0.0, 0.0, 0.0, 0.2, 0.4, 0.6]


def test_schedule_refills_while_idle_and_never_banks_more_than_the_burst() -> None:
    schedule = _Schedule(rate=5.0, burst=3)
    tat = None
    for _ in range(6):
        tat, _ = schedule.take(tat, 100.0, priority=False)
    # Long idle: the next requests go at once again, but only a burst of them.
    delays = []
    for _ in range(4):
        tat, delay = schedule.take(tat, 200.0, priority=False)
        delays.append(round(delay, 6))
    assert delays == [0.0, 0.0, 0.0, 0.2]


def test_priority_goes_first_and_still_counts() -> None:
    schedule = _Schedule(rate=1.0, burst=1)
    tat, _ = schedule.take(None, 10.0, priority=False)
    tat, delay = schedule.take(tat, 10.0, priority=False)
    assert delay == 1.0
    tat, delay = schedule.take(tat, 10.0, priority=True)
    assert delay == 0.0
    _, delay = schedule.take(tat, 10.0, priority=False)
    assert delay == 3.0  # the priority request took a slot: the queue moved one on


def test_stale_schedule_is_forgotten() -> None:
    schedule = _Schedule(rate=1.0, burst=1)
    _, delay = schedule.take(10_000.0, 0.0, priority=False)  # far beyond the horizon (a clock jump)
    assert delay == 0.0


def test_limited_routes_are_the_deployed_gateways() -> None:
    assert limited_route("POST", "/api/v1/auth/cli/complete")
    assert limited_route("GET", "/api/v1/auth/cli/callback")
    assert limited_route("GET", "/api/v1/auth/web/logout")
    assert limited_route("GET", "/api/v1/auth/mfa/status")
    assert limited_route("POST", "/api/v1/api-tokens")
    assert not limited_route("GET", "/api/v1/api-tokens")
    assert not limited_route("DELETE", "/api/v1/api-tokens/x")
    assert not limited_route("GET", "/api/v1/info")
    assert not limited_route("GET", "/api/v1/rack-proxy/apps")


async def test_two_processes_share_one_schedule(tmp_path: Path) -> None:
    # Two budgets on one directory behave like two processes: the second waits behind the first.
    first = RequestBudget(URL, tmp_path, rate=2.0, burst=2)
    second = RequestBudget(URL, tmp_path, rate=2.0, burst=2)
    delays = [(await first.reserve()).delay, (await first.reserve()).delay, (await second.reserve()).delay]
    assert delays[:2] == [0.0, 0.0]
    assert 0.4 < delays[2] <= 0.5
    path = tmp_path / BUDGET_FILE
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert list(json.loads(path.read_text())) == [origin(URL)]
    # Another gateway has its own budget in the same file.
    other = RequestBudget("https://other.example.com", tmp_path, rate=2.0, burst=2)
    assert (await other.reserve()).delay == 0.0


async def test_penalize_pushes_every_process_back(tmp_path: Path) -> None:
    one = RequestBudget(URL, tmp_path, rate=10.0, burst=5)
    two = RequestBudget(URL, tmp_path, rate=10.0, burst=5)
    assert (await two.reserve()).delay == 0.0
    await one.penalize(2.0)
    assert (await two.reserve()).delay >= 2.0


async def test_without_a_config_directory_the_schedule_stays_in_the_process(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    budget = RequestBudget(URL, missing, rate=0.05, burst=1)  # 20 s apart: paced, however loaded the machine
    assert (await budget.reserve()).delay == 0.0
    assert (await budget.reserve()).delay > 0.9
    assert not missing.exists()


async def test_a_symlinked_budget_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / BUDGET_FILE).symlink_to(victim)
    budget = RequestBudget(URL, tmp_path, rate=0.05, burst=1)
    assert (await budget.reserve()).delay == 0.0
    assert (await budget.reserve()).delay > 0.9  # fell back to this process's own schedule
    assert victim.read_text() == "precious"


async def test_a_garbage_budget_file_is_replaced_not_fatal(tmp_path: Path) -> None:
    (tmp_path / BUDGET_FILE).write_bytes(b"\x00[not json")
    budget = RequestBudget(URL, tmp_path, rate=1.0, burst=1)
    assert (await budget.reserve()).delay == 0.0
    assert origin(URL) in json.loads((tmp_path / BUDGET_FILE).read_text())


def test_budgets_are_one_per_gateway(tmp_path: Path) -> None:
    budgets = Budgets(tmp_path)
    assert budgets.for_url("https://a.example.com") is budgets.for_url("https://a.example.com:443")
    assert budgets.for_url("https://a.example.com") is not budgets.for_url("https://b.example.com")


def test_a_login_start_pays_for_the_browser_requests_it_causes() -> None:
    from rgw.client.budget import BROWSER_REQUESTS_PER_LOGIN, slots_for

    assert BROWSER_REQUESTS_PER_LOGIN == 2  # the OAuth callback and the sign-in step it redirects to
    assert slots_for("POST", "/api/v1/auth/cli/start") == 3
    assert slots_for("POST", "/api/v1/auth/cli/complete") == 1
    assert slots_for("GET", "/api/v1/info") == 0


def test_slots_move_the_schedule_by_that_many_intervals() -> None:
    schedule = _Schedule(rate=10.0, burst=1)
    tat, delay = schedule.take(None, 0.0, priority=False, slots=3)
    assert delay == 0.0
    _, delay = schedule.take(tat, 0.0, priority=False)
    assert round(delay, 6) == 0.3


HOLD = (
    "import sys, fcntl, os; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
    "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()"
)


def _spoil(path: Path, how: str) -> subprocess.Popen[bytes] | None:
    if how == "directory":
        path.mkdir()
    elif how == "symlink":
        path.symlink_to(path.parent / "elsewhere")
    else:
        argv = [sys.executable, "-c", HOLD, str(path)]
        holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        return holder
    return None


@pytest.mark.parametrize("how", ["directory", "symlink", "locked"])
async def test_an_unusable_budget_file_is_said_once_and_paces_at_half_the_rate(tmp_path: Path, how: str) -> None:
    heard: list[str] = []
    holder = _spoil(tmp_path / BUDGET_FILE, how)
    try:
        budgets = Budgets(tmp_path, on_warning=heard.append)
        budget = budgets.for_url(URL)
        delays = [(await budget.reserve()).delay for _ in range(3)]
        other = budgets.for_url("https://other.example.com")  # the same file: said once for the run
        await other.reserve()
    finally:
        if holder is not None:
            holder.communicate(timeout=30)
    assert delays[0] == 0.0
    # No burst, half the rate (7/s -> one slot per 2/7 s): the second waits, the third twice as long.
    assert 0.25 < delays[1] <= 2 / 7
    assert 0.5 < delays[2] <= 4 / 7
    assert len(heard) == 1, heard
    assert heard[0].startswith(f"Warning: cannot use {tmp_path / BUDGET_FILE} (")
    assert budget.unusable


async def test_a_missing_config_directory_is_not_worth_a_warning(tmp_path: Path) -> None:
    heard: list[str] = []
    budget = Budgets(tmp_path / "nope", on_warning=heard.append).for_url(URL)
    await budget.reserve()
    assert heard == []
    assert not budget.unusable


# -- issue 20, item 6: the schedule in the file cannot switch pacing off or hang the CLI in silence


def _strict(text: str) -> object:
    """JSON as any other tool reads it: ``NaN`` or ``Infinity`` in the file is a failure here."""

    def refuse(name: str) -> object:
        raise AssertionError(f"{name} written to the budget file")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("tat", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 40, "true", '"x"'])
async def test_a_schedule_that_is_not_a_time_is_dropped_and_pacing_goes_on(tmp_path: Path, tat: str) -> None:
    key = origin(URL)
    (tmp_path / BUDGET_FILE).write_text(f'{{"{key}": {{"tat": {tat}}}, "https://other:443": {{"tat": {tat}}}}}')
    budget = RequestBudget(URL, tmp_path, rate=0.05, burst=1)
    assert (await budget.reserve()).delay == 0.0
    assert (await budget.reserve()).delay > 0.9  # paced: not switched off
    data = _strict((tmp_path / BUDGET_FILE).read_text())
    assert isinstance(data, dict)
    assert list(data) == [key]  # nothing out of bounds is written back


async def test_a_schedule_beyond_the_horizon_is_dropped(tmp_path: Path) -> None:
    import time

    from rgw.client.budget import MAX_HORIZON

    key = origin(URL)
    for ahead in (295.0, MAX_HORIZON + 1):
        (tmp_path / BUDGET_FILE).write_text(json.dumps({key: {"tat": time.time() + ahead}}))
        budget = RequestBudget(URL, tmp_path)
        assert (await budget.reserve()).delay == 0.0, ahead  # no wait of minutes (a clock step, a planted file)
    assert MAX_HORIZON <= 60


@pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio")]
)
async def test_a_wait_longer_than_a_few_seconds_is_said(tmp_path: Path) -> None:
    import time

    from rgw.client.budget import LONG_WAIT

    heard: list[str] = []
    key = origin(URL)
    (tmp_path / BUDGET_FILE).write_text(json.dumps({key: {"tat": time.time() + 30}}))
    budget = Budgets(tmp_path, on_warning=heard.append).for_url(URL)
    waited = await budget.acquire()  # virtual seconds: trio's MockClock jumps them
    assert waited > 25
    assert len(heard) == 1, heard
    assert heard[0].startswith(f"Waiting {round(waited)} s before the next request to {key}: ")
    assert "rate-budget.json" in heard[0]
    (tmp_path / BUDGET_FILE).write_text(json.dumps({key: {"tat": time.time() + LONG_WAIT / 2}}))
    assert 0 < await budget.acquire() <= LONG_WAIT
    assert len(heard) == 1  # a short wait is not worth a line


def test_a_budget_needs_a_positive_rate_and_a_burst_of_one_at_least() -> None:
    for rate, burst in ((0.0, 1), (-1.0, 1), (1.0, 0)):
        with pytest.raises(ValueError, match=r"^a request budget needs a positive rate and a burst of at least 1$"):
            RequestBudget(URL, None, rate=rate, burst=burst)
    assert RequestBudget(URL, None, rate=0.1, burst=1).schedule.burst == 1


def test_a_limited_route_is_known_with_a_trailing_slash_too_and_only_by_its_exact_name() -> None:
    from rgw.client.budget import slots_for

    assert limited_route("post", "/api/v1/api-tokens/")
    assert not limited_route("POST", "/api/v1/api-tokensX")
    assert slots_for("POST", "/api/v1/auth/cli/start/") == 3
    assert slots_for("POST", "/api/v1/auth/cli/startX") == 1


async def test_the_budget_counts_the_slots_taken_and_the_seconds_waited(tmp_path: Path) -> None:
    budget = RequestBudget(URL, tmp_path, rate=10.0, burst=1)
    assert (budget.taken, budget.waited) == (0, 0.0)
    first = await budget.reserve(slots=3)
    second = await budget.reserve()
    third = await budget.reserve(priority=True)
    assert first.delay == 0.0
    assert 0.25 < second.delay <= 0.3  # behind the three slots of the first
    assert third.delay == 0.0  # a person waits on it: no queue
    assert budget.taken == 5
    assert budget.waited == second.delay


async def test_a_429_pause_starts_after_the_queue_already_scheduled(tmp_path: Path) -> None:
    budget = RequestBudget(URL, tmp_path, rate=10.0, burst=1)
    for _ in range(30):  # three seconds of requests already queued
        await budget.reserve()
    await budget.penalize(0.5)  # a shorter pause than the queue: nothing is brought forward
    assert 2.9 < (await budget.reserve()).delay <= 3.0


async def test_a_429_pauses_for_its_seconds_plus_the_burst_s_intervals(tmp_path: Path) -> None:
    budget = RequestBudget(URL, tmp_path, rate=10.0, burst=5)
    await budget.penalize(2.0)
    # Pushed to now + 5 x 0.1 s + 2 s; the next request then goes a burst early, one interval in.
    assert 2.0 < (await budget.reserve()).delay <= 2.1


async def test_without_a_config_directory_the_process_paces_at_the_full_rate(tmp_path: Path) -> None:
    budget = RequestBudget(URL, tmp_path / "nope", rate=1.0, burst=1)
    assert (await budget.reserve()).delay == 0.0
    assert 0.9 < (await budget.reserve()).delay <= 1.0
    assert not budget.unusable


async def test_the_budget_file_keeps_each_time_to_a_tenth_of_a_millisecond(tmp_path: Path) -> None:
    await RequestBudget(URL, tmp_path).reserve()
    tat = json.loads((tmp_path / BUDGET_FILE).read_text())[origin(URL)]["tat"]
    assert round(tat, 4) == tat
    assert len(repr(tat).split(".")[1]) <= 4


@pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio")]
)
async def test_under_verbose_each_wait_for_a_slot_and_each_429_pause_is_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="rgw")
    heard: list[str] = []
    budget = RequestBudget(URL, None, rate=2.0, burst=1, on_wait=heard.append)
    assert await budget.acquire() == 0.0  # no wait: nothing said
    waited = await budget.acquire()
    assert 0.45 < waited <= 0.5
    await budget.penalize(1.5)
    lines = [r.getMessage() for r in caplog.records if r.name == "rgw"]
    assert lines == [
        f"budget: waiting {waited:.2f} s for a request slot of https://gw.example.com:443",
        "budget: https://gw.example.com:443 answered 429; every process pauses its requests for 1.5 s",
    ]
    assert heard == []  # half a second is not a long wait


@pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio")]
)
async def test_acquire_takes_one_slot_unless_told_and_a_wait_of_exactly_long_wait_is_not_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rgw.client.budget import LONG_WAIT, Slot

    heard: list[str] = []
    budget = RequestBudget(URL, None, rate=1.0, burst=1, on_wait=heard.append)
    await budget.acquire()
    assert budget.taken == 1
    await budget.acquire(slots=3)
    assert budget.taken == 4
    assert await budget.acquire(priority=True) == 0.0
    asked: list[tuple[bool, int]] = []

    async def exactly_long(*, priority: bool = False, slots: int = 1) -> Slot:
        asked.append((priority, slots))
        return Slot(LONG_WAIT)

    monkeypatch.setattr(budget, "reserve", exactly_long)
    assert await budget.acquire() == LONG_WAIT
    assert heard == []
    assert asked == [(False, 1)]


async def test_an_unusable_budget_file_is_told_under_verbose_as_the_budget_s(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="rgw")
    heard: list[str] = []
    (tmp_path / BUDGET_FILE).mkdir()
    await RequestBudget(URL, tmp_path, on_warning=heard.append).reserve()
    consequence = "requests of other rack-gateway processes are not known, so this one paces its own at half the rate."
    assert len(heard) == 1
    assert heard[0].startswith(f"Warning: cannot use {tmp_path / BUDGET_FILE} (")
    assert heard[0].endswith(f"): {consequence}")
    assert [r.getMessage() for r in caplog.records if r.name == "rgw"] == [f"budget: {heard[0]}"]
