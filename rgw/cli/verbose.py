"""``-v/--verbose`` and ``RACK_GATEWAY_DEBUG=1``: the library's debug log (``rgw.trace``) on stderr.

Every line is ``[rgw +1.234s] <what happened>``, the seconds counted from the start of the run:
each request (method, URL with its query values hidden, status, time), each retry decision and
wait, each wait for the request budget or for a lock.  Lines are made printable (a gateway's text
cannot drive the terminal), and every credential the run holds (the stored session sent, an API
token, an MFA code) is replaced by ``***`` in case one ever slipped into a message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TextIO

from rgw.text import printable
from rgw.trace import LOGGER, REDACTED


class VerboseHandler(logging.Handler):
    """Prints each ``rgw`` log line on ``stream``, with every secret ``secrets()`` names hidden."""

    def __init__(self, stream: TextIO, secrets: Callable[[], set[str]]) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.secrets = secrets
        self.started = time.time()  # LogRecord.created is wall-clock time
        #: While a live block is drawn on ``stream``: the writer that puts a line above it.
        self.write: Callable[[str], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must never break the command
            text = str(record.msg)
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        elapsed = record.created - self.started
        line = f"[rgw {elapsed:+.3f}s] {printable(text)}"
        with contextlib.suppress(OSError, ValueError):  # stderr closed: nothing to tell
            if self.write is not None:
                self.write(line)
            else:
                print(line, file=self.stream, flush=True)


def start_verbose(stream: TextIO, secrets: Callable[[], set[str]]) -> VerboseHandler:
    """Print the debug log of ``rgw`` on ``stream`` until ``stop_verbose``."""
    handler = VerboseHandler(stream, secrets)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    import platform

    from rgw import __version__
    from rgw.trace import debug

    debug("rack-gateway %s (python %s)", __version__, platform.python_version())
    return handler


def stop_verbose(handler: VerboseHandler) -> None:
    logger = logging.getLogger(LOGGER)
    logger.removeHandler(handler)
    if not logger.handlers:
        logger.setLevel(logging.NOTSET)
