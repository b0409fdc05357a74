"""One deadline per command: a cancel scope set where the command starts, read by everything under it.

A command (``--timeout``) or a login (``login --timeout``: the whole login, every rack of it) has
one deadline, a cancel scope opened with ``until``/``within``; nothing below it holds a copy.  The
retry policy reads the time left (``time_left``, from ``anyio.current_effective_deadline()``) so
that it starts no try it could not finish, and a round trip in flight is cancelled by the scope
itself.  The one exception to "the clock runs" is a person answering a step-up MFA question: the
command's clock stops while they do (``paused``), in the one scope that holds the deadline.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar, Token
from types import TracebackType

import anyio

_COMMAND: ContextVar[anyio.CancelScope | None] = ContextVar("rgw_command_deadline", default=None)


class Deadline:
    """``with until(t) as scope``: a cancel scope that ends at ``t``, registered as the command's.

    Whoever opens it checks ``scope.cancelled_caught`` afterwards and says what timed out.
    """

    def __init__(self, deadline: float) -> None:
        self.scope = anyio.CancelScope(deadline=deadline)
        self._token: Token[anyio.CancelScope | None] | None = None

    def __enter__(self) -> anyio.CancelScope:
        self.scope.__enter__()
        self._token = _COMMAND.set(self.scope)
        return self.scope

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._token is not None:
            _COMMAND.reset(self._token)
        return bool(self.scope.__exit__(exc_type, exc, tb))


def until(deadline: float) -> Deadline:
    """The deadline at ``deadline`` (an ``anyio.current_time()`` value)."""
    return Deadline(deadline)


def within(seconds: float) -> Deadline:
    """The deadline of a command that starts now and may take ``seconds``."""
    return Deadline(anyio.current_time() + seconds)


def time_left() -> float:
    """Seconds until the enclosing deadline (``inf`` without one; ``-inf`` once cancelled)."""
    return anyio.current_effective_deadline() - anyio.current_time()


def in_force() -> bool:
    """Whether a command's deadline (``until``/``within``) is in force here.

    Only those count: a caller's own scope (a test's ``fail_after``) is no command's deadline.
    """
    return _COMMAND.get() is not None


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """A person is answering a question: the command's deadline moves on by the time they take."""
    scope = _COMMAND.get()
    if scope is None:
        yield
        return
    started, deadline = anyio.current_time(), scope.deadline
    scope.deadline = math.inf  # not cut off while typing; Ctrl-C still cancels
    try:
        yield
    finally:
        scope.deadline = deadline + (anyio.current_time() - started)
