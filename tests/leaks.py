"""The test suite's leak check: no CLI output a test captures may carry a token.

Every CLI run a test captures is handed to ``WATCH.record(argv, *texts)``: the in-process ``cli``
fixture (tests/integration/conftest.py), the subprocess helpers (``run_cli`` in
test_cli_subprocess.py, ``procs.spawn`` and ``PipeReader``).  ``record`` looks for token-shaped
words (``rgw_sess_…``, ``rgw_token_…``) at once, while the gateways that issued them still run,
and asks every live reference gateway whether it issued one (``Gateway.issued``: it keeps only
digests, so it is asked, not searched).  A leak is a token a gateway issued, or any word in the
reference gateway's session shape.  Allowed: anything from a command whose first word is
``token`` (it prints one on purpose), and the API token ``api-token create`` prints.  An autouse
fixture (tests/conftest.py) fails the test whose runs leaked, naming the command and the token's
first characters only.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from rgw.testing.gateway.core import live_gateways

#: Words that could be a reference gateway's token: the prefix, then base64url.
CANDIDATE = re.compile(r"rgw_(?:sess|token)_[A-Za-z0-9_-]{16,}")
#: The reference gateway's session token exactly: ``rgw_sess_`` + 43 base64url characters.
SESSION_SHAPE = re.compile(r"rgw_sess_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
#: Global options that take a value (they may come before the command).
OPTIONS_WITH_VALUES = frozenset({"--rack", "-r", "--config", "--api-token", "--mfa-method", "--mfa-code"})
TOKEN_LENGTHS = (52, 53)  # rgw_sess_ + 43, rgw_token_ + 43


def command_of(argv: Sequence[str]) -> tuple[str, ...]:
    """The command words of a CLI run: ``("api-token", "create")``, ``("login",)``, ``()``."""
    words: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in OPTIONS_WITH_VALUES:
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
            if len(words) == 2 or words[0] != "api-token":
                break
    return tuple(words)


@dataclass(frozen=True)
class Leak:
    command: tuple[str, ...]
    where: str
    kind: str
    shown: str  # the token's first characters, never the token

    def __str__(self) -> str:
        return f"{' '.join(self.command) or '(no command)'} ({self.where}) printed {self.kind} {self.shown}…"


class LeakWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # PipeReader records from its own threads
        self._leaks: list[Leak] = []

    def record(self, argv: Sequence[str], *texts: str, where: str) -> list[Leak]:
        """Check the output of one run (``argv`` without the program name); the leaks found."""
        command = command_of(argv)
        if command[:1] == ("token",):
            return []
        gateways = live_gateways()
        found: list[Leak] = []
        for text in texts:
            for match in CANDIDATE.finditer(text):
                word = match.group(0)
                shapes = {word, *(word[:n] for n in TOKEN_LENGTHS if len(word) > n)}
                issued = any(gateway.issued(shape) for shape in shapes for gateway in gateways)
                session = word.startswith("rgw_sess_") and (
                    issued or SESSION_SHAPE.match(text, match.start()) is not None
                )
                if word.startswith("rgw_token_") and command == ("api-token", "create"):
                    continue  # the one command that shows an API token: the one it created
                if issued or session:
                    kind = "a session token" if word.startswith("rgw_sess_") else "an API token"
                    found.append(Leak(command, where, kind, word[:14]))
        with self._lock:
            self._leaks.extend(found)
        return found

    def take(self) -> list[Leak]:
        """The leaks recorded since the last ``take``, forgotten."""
        with self._lock:
            leaks, self._leaks = self._leaks, []
        return leaks


WATCH = LeakWatch()
