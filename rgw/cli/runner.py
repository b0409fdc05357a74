"""Running a command with an event loop only when it needs one.

Most invocations are local: ``--help``, ``--version``, ``racks``, ``switch``, ``status --offline``,
``token``, ``completion``.  They read or write ``config.json`` and print; nothing waits on a network.
Starting an asyncio loop (importing asyncio and anyio's backend) costs more than everything else such
a command does, so they run without one: asyncclick parses and dispatches with plain coroutines,
which ``drive`` steps to the end, and ``rgw.aio`` does the file I/O directly (with no loop there is
nothing to block).  A command that talks to a gateway is marked ``@on_event_loop``: called without a
loop, it starts one (``anyio.run``) for its body, and everything inside it follows the structured
concurrency rules as before.  Called on a loop (tests, the demo, a program using ``rgw.cli.run``) it
simply runs there.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from rgw.aio import in_event_loop

P = ParamSpec("P")
T = TypeVar("T")


class NeedsEventLoop(RuntimeError):
    """A coroutine driven without a loop waited for one: the command lacks ``@on_event_loop``."""


def drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits on an event loop to its end, and return its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise NeedsEventLoop("a command waited on an event loop without starting one (mark it @on_event_loop)")


def on_event_loop(function: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Make a command body run on an anyio event loop, starting one when there is none."""

    @functools.wraps(function)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if in_event_loop():
            return await function(*args, **kwargs)
        import anyio

        async def body() -> T:
            return await function(*args, **kwargs)

        return anyio.run(body)

    return run
