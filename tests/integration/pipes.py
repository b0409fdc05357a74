"""Reading a subprocess's output as it comes, with a deadline: a hang fails fast and says what it saw.

``PipeReader(proc.stderr, "the login")`` drains the pipe in a daemon thread (so the child never blocks
on a full pipe) and keeps every line.  ``wait_for(predicate, timeout, what)`` returns the first line
that matches, or fails with ``what`` was not seen, and everything read so far, once the deadline
passes or the pipe closes.  ``text()`` is the whole output once the process has ended; the reader
closes the pipe at its end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from tests.leaks import WATCH


class PipeReader:
    def __init__(self, pipe: IO[str] | None, name: str, argv: Sequence[str] = ()) -> None:
        assert pipe is not None, f"{name}: the pipe was not opened (stdout/stderr=PIPE)"
        self.name = name
        #: The CLI's arguments, for the leak check (tests/leaks.py); unknown: no command may show a token.
        self.argv = tuple(argv)
        self._lines: list[str] = []
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), name=f"read {name}", daemon=True)
        self._thread.start()

    def _pump(self, pipe: IO[str]) -> None:
        try:
            for line in pipe:
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        except (OSError, ValueError):
            pass  # the test closed the pipe (a failing test ending its subprocess): the output ends here
        finally:
            with contextlib.suppress(OSError):
                pipe.close()
            with self._changed:
                self._closed = True
                self._changed.notify_all()
                said = "".join(self._lines)
            WATCH.record(self.argv, said, where=f"subprocess ({self.name})")

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        """The first line so far or to come (from the start of the output) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._changed:
            while True:
                for line in self._lines[checked:]:
                    if predicate(line):
                        return line
                checked = len(self._lines)
                said = "".join(self._lines) or "(nothing)\n"
                if self._closed:
                    raise AssertionError(f"{self.name} ended its output before {what}; it wrote:\n{said}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.name}: no {what} within {timeout:g} s; it wrote:\n{said}")
                self._changed.wait(remaining)

    def text(self, timeout: float = 30.0) -> str:
        """Everything the pipe carried; waits (at most ``timeout``) for it to close."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self.name} kept its output open for {timeout:g} s"
        with self._changed:
            return "".join(self._lines)
