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
from typing import TYPE_CHECKING

from rgw.text import printable
from rgw.trace import LOGGER, REDACTED

if TYPE_CHECKING:
    from rgw.cli.app import App


class VerboseHandler(logging.Handler):
    def __init__(self, app: App) -> None:
        super().__init__(logging.DEBUG)
        self.app = app
        self.started = time.time()  # LogRecord.created is wall-clock time

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must never break the command
            text = str(record.msg)
        for secret in sorted(self.app.known_secrets(), key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        elapsed = record.created - self.started
        stream = self.app.err
        with contextlib.suppress(OSError, ValueError):  # stderr closed: nothing to tell
            print(f"[rgw {elapsed:+.3f}s] {printable(text)}", file=stream, flush=True)


def start_verbose(app: App) -> bool:
    """Print the debug log of ``rgw`` on the app's stderr; False when it is printed already."""
    if app.verbose_handler is not None:
        return False
    handler = VerboseHandler(app)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    app.verbose_handler = handler
    import platform

    from rgw import __version__
    from rgw.trace import debug

    debug("rack-gateway %s (python %s)", __version__, platform.python_version())
    return True


def stop_verbose(app: App) -> None:
    handler, app.verbose_handler = app.verbose_handler, None
    if handler is None:
        return
    logger = logging.getLogger(LOGGER)
    logger.removeHandler(handler)
    if not logger.handlers:
        logger.setLevel(logging.NOTSET)
