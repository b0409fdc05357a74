"""Helpers for tests that drive ``LoginFlow`` directly: an event recorder, a device, the login state.

``Recorder`` is the flow's ``emit``: it keeps every event in order (tests compare the sequence) and lets a
task wait for the first event of a kind, which is how a test plays the user ("once the URL is shown,
sign in").  ``wait_until`` waits, with a deadline, for a condition on the gateway or the fault proxy,
which run in their own threads and have no events a test could await on both backends.  Shared by the
orchestrator tests and the flaky-link tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import anyio

from rgw.login import events as ev
from rgw.models import DeviceInfo


def state_of(url: str) -> str:
    """The ``state`` query parameter of a sign-in URL."""
    return parse_qs(urlsplit(url).query)["state"][0]


def device_on(host: str) -> DeviceInfo:
    """A fresh device identity on ``host``, as a login sends it to the gateway."""
    return DeviceInfo(str(uuid.uuid4()), host, "linux/x86_64", "rgw-python/test")


@dataclass
class Recorder:
    """Collects one login's events; ``first`` waits for an event of a kind."""

    events: list[ev.LoginEvent] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)

    def __call__(self, event: ev.LoginEvent) -> None:
        self.events.append(event)
        self.changed.set()
        self.changed = anyio.Event()

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    def of(self, kind: type[ev.LoginEvent]) -> list[ev.LoginEvent]:
        return [e for e in self.events if isinstance(e, kind)]

    async def first(self, kind: type[ev.LoginEvent]) -> ev.LoginEvent:
        while True:
            found = self.of(kind)
            if found:
                return found[0]
            await self.changed.wait()


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Return once ``condition()`` holds; fail naming ``what`` if it does not within ``timeout`` seconds."""
    try:
        with anyio.fail_after(timeout):
            while not condition():
                await anyio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout:g} s") from None
