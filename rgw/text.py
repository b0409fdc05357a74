"""Making text that is not ours safe to print on a terminal.

A gateway's error message, an email address, an app or role name, an ``auth_url``, a rack name
from the config: any of them could carry escape sequences (set the window title, clear the
screen, move the cursor up and forge a "Logged in as admin" line) or bidirectional overrides that
make text read differently from what it is.  ``printable`` shows every such character escaped
(``\\x1b``, ``\\n``, ``\\u202e``) and leaves the rest alone.  Text output runs foreign text
through it; JSON output stays exact (``json.dumps`` escapes control characters itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(value: object, *, limit: int | None = None) -> str:
    """``value`` as text with control, format and separator characters escaped; cut at ``limit``."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    if text.isprintable():
        return text
    out: list[str] = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif char in _NAMED:
            out.append(_NAMED[char])
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def find_secret(candidate: str, secrets: Iterable[tuple[str, T]]) -> T | None:
    """The value paired with the secret equal to ``candidate``, comparing with every one of them in
    constant time (so timing tells nothing about any); empty secrets never match."""
    import hmac  # here, not at the top: local commands import this module and never compare secrets

    probe = candidate.encode("utf-8", "surrogatepass")
    found: T | None = None
    for secret, value in secrets:
        if secret and hmac.compare_digest(probe, secret.encode("utf-8", "surrogatepass")):
            found = value
    return found


def is_plain_name(value: str) -> bool:
    """Letters (a-z, A-Z), digits, ``.``, ``_`` and ``-``, led by a letter or digit: a name every shell
    reads back as one word unquoted, that no completion protocol or option parser takes for more."""
    return bool(value) and value[0].isascii() and value[0].isalnum() and all(c in _PLAIN for c in value)


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

# -- the secrets of a run ------------------------------------------------------------------------

#: The secrets of the command running now: ``rgw.cli.run`` starts each run with a set of its own
#: (the ``App``'s ``secrets``), every request a gateway client sends adds what it carries, and
#: every text a gateway sends back is scrubbed of all of them (``rgw.client.answers``).  None
#: outside a run (a program using the library): only what each request carried is then known.
_RUN_SECRETS: ContextVar[set[str] | None] = ContextVar("rgw_run_secrets", default=None)

#: Shorter values are never taken for secrets: they would match too much of any text.
MIN_SECRET = 6
#: Below this length (a 6-digit TOTP code) a secret is matched only as a word of its own, so a code
#: does not take digits out of a longer number.
_LOOSE_SECRET = 8
REDACTED = "<redacted>"


def start_run_secrets(secrets: set[str]) -> None:
    """Make ``secrets`` the set of the run that starts now (in this context and the tasks it starts)."""
    _RUN_SECRETS.set(secrets)


def run_secrets() -> set[str]:
    """The set of the run in progress, to read or add to; outside a run, a new empty set."""
    found = _RUN_SECRETS.get()
    return found if found is not None else set()


def in_run() -> bool:
    return _RUN_SECRETS.get() is not None


def keep_secrets(values: Iterable[str | None]) -> None:
    """Add ``values`` (stripped; empty and short ones left out) to the run's secrets, if a run is on."""
    found = _RUN_SECRETS.get()
    if found is not None:
        found.update(v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET)


def without_secrets(text: str, secrets: Iterable[str], mark: str = REDACTED) -> str:
    """``text`` with every one of ``secrets`` in it replaced by ``mark`` (the longest first)."""
    wanted = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)
    for secret in wanted:
        if secret not in text:
            continue
        if len(secret) >= _LOOSE_SECRET:
            text = text.replace(secret, mark)
        else:
            import re

            text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", mark, text)
    return text


#: The longest credential accepted (the gateway's tokens are far shorter; this bounds headers).
MAX_TOKEN = 4096


def is_token(value: object) -> bool:
    """A credential fit for an ``Authorization`` header: printable ASCII, no whitespace, not too long.

    A token with CR/LF (a file saved with CRLF line endings, a hostile gateway) could inject a
    header; a non-ASCII one cannot be sent at all.  Callers reject such a token without ever
    showing it.
    """
    return isinstance(value, str) and 0 < len(value) <= MAX_TOKEN and all(33 <= ord(c) <= 126 for c in value)
