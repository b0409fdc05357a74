"""rgw.aio.call: the one way off the loop; a cancelled caller waits for its work, on both backends."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from rgw import aio

pytestmark = pytest.mark.anyio


async def test_a_cancelled_call_waits_until_its_work_is_done() -> None:
    started, done = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        time.sleep(0.05)  # still running when the caller is cancelled
        done.set()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_once_started() -> None:
                while not started.is_set():
                    await anyio.sleep(0.001)
                scope.cancel()

            tg.start_soon(cancel_once_started)
            await aio.call(work)
    assert scope.cancel_called
    assert done.is_set()  # never left running after its caller has gone


async def test_a_call_cancelled_before_it_starts_never_runs() -> None:
    ran: list[int] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        await aio.call(ran.append, 1)
    assert ran == []


async def test_abandon_leaves_the_thread_behind_at_once() -> None:
    started, release, done = threading.Event(), threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(30)
        done.set()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_once_started() -> None:
                while not started.is_set():
                    await anyio.sleep(0.001)
                scope.cancel()

            tg.start_soon(cancel_once_started)
            await aio.call(work, abandon=True)
    assert not done.is_set()  # the caller left while the work went on
    release.set()
    while not done.is_set():
        await anyio.sleep(0.001)


async def test_results_and_errors_come_back() -> None:
    assert await aio.call(divmod, 7, 2) == (3, 1)
    with pytest.raises(ZeroDivisionError):
        await aio.call(divmod, 1, 0)


def test_without_a_loop_the_work_is_just_called() -> None:
    caller = threading.get_ident()
    coroutine = aio.call(threading.get_ident)
    with pytest.raises(StopIteration) as stop:
        coroutine.send(None)
    assert stop.value.value == caller
