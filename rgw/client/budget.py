"""The request budget of one gateway, shared by every ``rack-gateway`` process on the machine.

A deployed gateway allows 10 requests/s (burst 20) per client IP on its ``/auth/*`` routes, and the
user's browser, every ``rack-gateway`` process and every CI job behind the same NAT address draw
from that one bucket.  A CLI that polls too often makes the gateway refuse the browser's own OAuth
callback, and that login can then never complete.  So every request to a limited route first takes
a slot from a budget set below the server's limit (``DEFAULT_RATE``/``DEFAULT_BURST``), and the
budget is this machine's share of the gateway's bucket, the browser's part included: a login's
``/start`` also pays for the two requests the user's browser will make because of it (the OAuth
callback and the sign-in step the deployed gateway redirects it to), so those always find room.

The budget is a GCRA schedule (a token bucket written as one timestamp, the *theoretical arrival
time*): taking a slot moves it one interval on and tells the caller when its slot comes.  The
timestamp lives in ``rate-budget.json`` in the config directory, read and written under a short
``flock`` in a worker thread; the lock is released before the caller sleeps until its slot, so no
lock is held while waiting and the waiters are served in order.  Logins that wait at the same time
therefore share the budget: each one's poll pace slows as more of them wait, and speeds up again as
they finish.  A 429 pushes the whole schedule back (``penalize``), slowing every process at once.
Without a config directory (an API token in CI, say) the schedule is kept in this process only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from rgw import aio, trace
from rgw.models import stamp_within
from rgw.shared import once_per_text, update_json_file, warn_unusable
from rgw.urls import origin

#: This machine's share of the deployed limit (10/s, burst 20), browser included: 7/s leaves 3/s for
#: other users behind the same address, and a burst of 7 keeps the server's bucket at 13 or more.
#: Any window of T seconds then carries at most 7T + 7 of our slots plus browser requests charged
#: earlier (at most 8 more), well inside the 20 + 10T the gateway accepts.
DEFAULT_RATE = 7.0
DEFAULT_BURST = 7
#: Requests the user's browser makes on the limited routes for one login (callback, sign-in step).
BROWSER_REQUESTS_PER_LOGIN = 2
BUDGET_FILE = "rate-budget.json"
#: A schedule further ahead than this is not one this machine made (a clock stepped back, a planted
#: or corrupt file): start afresh.  Only a queue of 400 requests (60 s at 7/s) reaches it legitimately.
MAX_HORIZON = 60.0
#: A schedule further behind than this belongs to a gateway nobody uses any more: it is dropped.
STALE = 60.0
#: A wait for a slot longer than this is said (stderr), not only traced: the user sees why nothing moves.
LONG_WAIT = 3.0


def limited_route(method: str, path: str) -> bool:
    """Whether a deployed gateway rate-limits ``method path`` (PROTOCOL.md, limits)."""
    if path.startswith(("/api/v1/auth/cli/", "/api/v1/auth/web/", "/api/v1/auth/mfa/")):
        return True
    return method.upper() == "POST" and path.rstrip("/") == "/api/v1/api-tokens"


def slots_for(method: str, path: str) -> int:
    """Budget slots a request takes: 0 off the limited routes; a login's start pays for its browser too."""
    if not limited_route(method, path):
        return 0
    if path.rstrip("/") == "/api/v1/auth/cli/start":
        return 1 + BROWSER_REQUESTS_PER_LOGIN
    return 1


@dataclass(frozen=True)
class Slot:
    """A reservation: wait ``delay`` seconds, then send."""

    delay: float


class _Schedule:
    """The GCRA arithmetic on one timestamp (seconds since the epoch: shared across processes)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.interval = 1.0 / rate
        self.burst = burst

    def take(self, tat: float | None, now: float, *, priority: bool, slots: int = 1) -> tuple[float, float]:
        """(new tat, delay) for one request at ``now`` taking ``slots`` slots."""
        start = _start(tat, now)
        # The request itself needs the first slot now; the others are for what it causes later
        # (the browser's requests after a login's start): they only push later requests back.
        new_tat = start + self.interval * slots
        if priority:  # a person is waiting on this one (an MFA code): it goes first
            return new_tat, 0.0
        send_at = start + self.interval - self.burst * self.interval
        return new_tat, max(0.0, send_at - now)

    def push_back(self, tat: float | None, now: float, pause: float) -> float:
        """Nothing more is sent for ``pause`` seconds (after a 429)."""
        start = _start(tat, now)
        return max(start, now + self.burst * self.interval + pause)


def _bounded(tat: object, now: float) -> float | None:
    """A stored tat, if it is a time within ``STALE`` behind and ``MAX_HORIZON`` ahead of ``now``.

    Anything else (not a number, NaN, infinite, minutes ahead after a clock step back) was not
    written by a schedule of this machine in the last minute: it is dropped, never obeyed or kept.
    """
    return stamp_within(tat, now, behind=STALE, ahead=MAX_HORIZON)


def _start(tat: float | None, now: float) -> float:
    """Where the schedule goes on from: ``tat`` when it is ahead of ``now`` within the horizon."""
    bounded = _bounded(tat, now)
    return bounded if bounded is not None and bounded > now else now


def _take(key: str, change: Callable[[float | None, float], tuple[float, float]]) -> Callable[[dict[str, Any]], float]:
    """The budget file's read-modify-write: apply ``change`` to ``key``'s tat, drop what is out of bounds.

    Every gateway's entry is written back as ``{"tat": <time in bounds>}`` or not at all.
    """

    def apply(data: dict[str, Any]) -> float:
        now = time.time()
        kept = {k: t for k, v in data.items() if isinstance(v, dict) and (t := _bounded(v.get("tat"), now)) is not None}
        new_tat, delay = change(kept.get(key), now)
        kept[key] = new_tat
        data.clear()
        data.update({k: {"tat": round(t, 4)} for k, t in kept.items()})
        return delay

    return apply


class RequestBudget:
    """The shared schedule of one gateway; ``await budget.acquire()`` before each limited request.

    When the budget file cannot be used (a directory or a symlink in its place, its lock held too
    long), ``on_warning`` hears it once and this process keeps a schedule of its own at half the
    rate with no burst: other processes' requests are not known, so it leaves them room.
    """

    def __init__(
        self,
        url: str,
        directory: Path | None = None,
        *,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        on_warning: Callable[[str], None] | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a request budget needs a positive rate and a burst of at least 1")
        self.key = origin(url)
        self.directory = directory
        self.schedule = _Schedule(rate, burst)
        self.on_warning = on_warning
        #: Hears every wait longer than ``LONG_WAIT`` (each one, not once: the seconds differ).
        self.on_wait = on_wait
        #: The file could not be used: this process's own, slower schedule.
        self.unusable = False
        self._local_tat: float | None = None
        self._lock: anyio.Lock | None = None
        #: Seconds spent waiting for slots, and slots taken (for benchmarks and --verbose).
        self.waited = 0.0
        self.taken = 0

    @property
    def path(self) -> Path | None:
        return self.directory / BUDGET_FILE if self.directory is not None else None

    async def reserve(self, *, priority: bool = False, slots: int = 1) -> Slot:
        """Take the next ``slots`` slots of the schedule (nothing is waited for here)."""
        delay = await self._update(lambda schedule, tat, now: schedule.take(tat, now, priority=priority, slots=slots))
        self.taken += slots
        self.waited += delay
        return Slot(delay)

    async def acquire(self, *, priority: bool = False, slots: int = 1) -> float:
        """Wait for this request's slots; returns the seconds waited."""
        slot = await self.reserve(priority=priority, slots=slots)
        if slot.delay > 0:
            trace.debug("budget: waiting %.2f s for a request slot of %s", slot.delay, self.key)
            if slot.delay > LONG_WAIT and self.on_wait is not None:
                self.on_wait(
                    f"Waiting {slot.delay:.0f} s before the next request to {self.key}: every rack-gateway "
                    f"process on this machine shares its rate limit ({BUDGET_FILE} in the config directory)."
                )
            await anyio.sleep(slot.delay)
        return slot.delay

    async def penalize(self, pause: float) -> None:
        """The gateway said 429: nothing from any process goes out for ``pause`` seconds."""
        trace.debug("budget: %s answered 429; every process pauses its requests for %.1f s", self.key, pause)
        await self._update(lambda schedule, tat, now: (schedule.push_back(tat, now, pause), 0.0))

    async def _update(self, change: Callable[[_Schedule, float | None, float], tuple[float, float]]) -> float:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # one worker-thread trip at a time per process
            path = self.path
            if path is not None and not self.unusable:
                try:
                    return await aio.call(update_json_file, path, _take(self.key, partial(change, self.schedule)))
                except FileNotFoundError:
                    pass  # no config directory: nobody else on this machine shares a schedule from it
                except OSError as exc:
                    self._give_up(path, exc)
            schedule = self.schedule if not self.unusable else _Schedule(1 / (2 * self.schedule.interval), 1)
            new_tat, delay = change(schedule, self._local_tat, time.time())
            self._local_tat = new_tat
            return delay

    def _give_up(self, path: Path, exc: OSError) -> None:
        self.unusable = True
        consequence = (
            "requests of other rack-gateway processes are not known, so this one paces its own at half the rate."
        )
        warn_unusable("budget", path, exc, consequence, self.on_warning)


class Budgets:
    """The budgets of one run, one per gateway, all backed by the same config directory.

    ``on_warning`` (said once per text in the run) also serves the run's MFA ledgers (``warn``);
    it hears every long wait for a slot as well (``RequestBudget.on_wait``).
    """

    def __init__(self, directory: Path | None, *, on_warning: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.warn = once_per_text(on_warning)
        self.say = on_warning
        self._budgets: dict[str, RequestBudget] = {}

    def for_url(self, url: str) -> RequestBudget:
        key = origin(url)
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = RequestBudget(url, self.directory, on_warning=self.warn, on_wait=self.say)
        return budget
