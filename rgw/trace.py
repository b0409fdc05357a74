"""What ``-v`` / ``RACK_GATEWAY_DEBUG=1`` shows: every request, retry decision, budget and lock wait.

Library code calls ``debug(message, *args)``; the message goes to the standard ``logging`` logger
``rgw`` at DEBUG level, which the CLI's ``--verbose`` handler prints on stderr (``rgw.cli.verbose``)
and a program using the library can route as it likes.  Until someone listens it costs a lookup:
``logging`` is not even imported for it.

Secrets never go in: callers pass URLs through ``redact_url`` (every query value hidden), and never
pass tokens, codes, code verifiers, states or bodies.  The CLI's handler also scrubs every credential
of the run it knows (defence in depth).
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

LOGGER = "rgw"
REDACTED = "***"


def enabled() -> bool:
    """Whether anybody listens to DEBUG messages of ``rgw`` (then extra facts are worth fetching)."""
    logging = sys.modules.get("logging")
    return logging is not None and logging.getLogger(LOGGER).isEnabledFor(logging.DEBUG)


def debug(message: str, *args: object) -> None:
    """Log ``message % args`` at DEBUG on the ``rgw`` logger, if anybody listens."""
    logging = sys.modules.get("logging")
    if logging is None:
        return  # nobody configured logging: nobody can be listening
    logger = logging.getLogger(LOGGER)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(message, *args)


def redact_url(url: str) -> str:
    """``url`` with every query value (state, code, token ...) and any user info replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = urlencode([(key, REDACTED) for key, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    if parts.query and not query:
        query = REDACTED  # not key=value pairs: hide it whole
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
