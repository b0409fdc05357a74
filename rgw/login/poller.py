"""Polling ``/auth/cli/complete`` until the gateway hands over the session.

Two separate rhythms: the *pace* while the login is pending (server-paced: a long poll held by a
gateway that supports ``wait``, else about once a second, cut short when the loopback listener or a
pasted URL wakes us), and the *backoff* on transient failures (the ``RetryPolicy``: exponential, full
jitter, ``Retry-After`` honoured, never past the deadline).  Pending is not an error; a failure
never slows the pace after the link recovers.  The deadline is the login's cancel scope
(``rgw.deadline``): a long poll never asks the gateway to hold past it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from rgw.client import GatewayClient
from rgw.deadline import time_left
from rgw.login.events import EventSink, RetryEvents
from rgw.models import DeviceInfo, LoginPending, LoginStart, Session
from rgw.retry import RetryPolicy

#: Below this a pending answer from a long-polling gateway counts as "not held" (hot-loop guard).
_MIN_HELD = 0.05


class Wakeup:
    """A re-armable signal: ``set()`` ends the current (or next) ``wait()`` early."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 - a pacing interval, not a deadline
        """Wait up to ``timeout``; True when woken.  Each wake is consumed once."""
        with anyio.move_on_after(timeout):
            await self._event.wait()
        if not self._event.is_set():
            return False
        self._event = anyio.Event()
        return True


class LoginPoller:
    def __init__(
        self,
        client: GatewayClient,
        start: LoginStart,
        device: DeviceInfo,
        *,
        rack: str,
        emit: EventSink,
        policy: RetryPolicy,
        wake: Wakeup | None = None,
        pace: float = 1.0,
        long_poll: float = 25.0,
        first_wait: float = 0.0,
        seen_stage: str | None = None,
    ) -> None:
        self.client = client
        self.start = start
        self.device = device
        self.policy = policy
        self.wake = wake or Wakeup()
        self.pace = pace
        self.long_poll = long_poll
        self.first_wait = first_wait
        #: The stage the login was last seen at (a resumed login's: its first poll is held while there).
        self.seen_stage = seen_stage
        #: Requests sent to ``/complete`` (for benchmarks and tests).
        self.requests = 0
        self.retries = RetryEvents(rack, emit)

    async def _poll_once(self, seen_stage: str | None = None, *, hold: bool = True) -> LoginPending | Session:
        wait = max(0.0, min(self.long_poll, time_left() - 1.0)) if self.long_poll > 0 and hold else 0.0
        return await self.policy.call(self._complete, wait or None, seen_stage, on_retry=self.retries)

    async def _complete(self, wait: float | None, seen_stage: str | None) -> LoginPending | Session:
        self.requests += 1
        return await self.client.complete_login(self.start, self.device, wait=wait, seen_stage=seen_stage)

    async def poll_once(self) -> LoginPending | Session:
        """One ``/complete`` (retried on transient failures until the deadline), never held."""
        return await self._poll_once(None, hold=False)

    async def poll_until_complete(self, on_pending: Callable[[LoginPending], Awaitable[None]] | None = None) -> Session:
        """Poll until the gateway returns a session; terminal answers raise ``LoginError``."""
        last_stage = self.seen_stage
        if self.first_wait > 0:
            # A gateway known to lack the extensions (the deployed one) is polled at a steady pace
            # and nobody signs in within a second: an immediate first poll would only spend a
            # request of the shared budget.  A wake (a pasted URL) still cuts the wait short.
            await self.wake.wait(self.first_wait)
        while True:
            sent = anyio.current_time()
            result = await self._poll_once(last_stage)
            if isinstance(result, Session):
                return result
            self.retries.reset()
            if on_pending is not None:
                await on_pending(result)
            held = anyio.current_time() - sent
            changed, last_stage = result.stage != last_stage, result.stage
            # A gateway that reports a stage supports long polling: it held the request until
            # something changed, so ask again at once.  Otherwise keep a steady pace.
            if result.stage is not None and self.long_poll > 0 and (held >= _MIN_HELD or changed):
                continue
            await self.wake.wait(max(0.0, self.pace - held))
