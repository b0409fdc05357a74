"""Every MFA answer this machine sent to a gateway: stop before the gateway locks the account.

A deployed gateway accepts at most 5 TOTP/backup-code answers per user per 5 minutes (successes
count), and 5 failures within 5 minutes lock the account until an administrator unlocks it; its
``/auth/cli/mfa`` calls all of that ``invalid_code``, so nothing in its answers says "one more and
you are locked".  One verification stays at 3 tries, but two in a row (a failed login, then another
one, or a step-up) could reach 5.  So each answer sent is written down, with its time and outcome,
in ``mfa-attempts.json`` in the config directory (shared by every ``rack-gateway`` process, see
``rgw.shared``), by gateway and user as the gateway counts them, and an answer that could be the
fifth failure, or one more than the gateway accepts, is not sent: the user is told how long to wait
instead.  A ledger that cannot be used is said, never silently replaced by an empty one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rgw import aio
from rgw.errors import MfaFailed
from rgw.models import stamp_within
from rgw.shared import update_json_file, warn_unusable
from rgw.urls import origin

LEDGER_FILE = "mfa-attempts.json"
WINDOW = 300.0
#: Failures within the window that lock the account, and answers of one kind it accepts.
LOCK_FAILURES = 5
MAX_ATTEMPTS = 5

Entry = list[Any]  # [time, ok (0/1), kind ("code" | "webauthn")]
#: Failures this process allows itself when the ledger cannot be used: one answer, not three.
UNUSABLE_FAILURES = 1


class MfaLedger:
    """The answers sent to one gateway for one user (``user`` None: not known yet, as in a login).

    Entries are kept under ``"<origin> <user>"``, or the origin alone when the user is not known
    (which is also how earlier versions kept them).  A known user counts its own entries and the
    unknown ones; an unknown user counts every entry at that gateway: never fewer than the gateway.
    When the file cannot be used (a directory or a symlink in its place, its lock held too long),
    ``on_warning`` hears it once and this process counts alone, allowing one failed answer.
    """

    def __init__(
        self,
        url: str,
        directory: Path | None,
        *,
        user: str | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.origin = origin(url)
        self.user = user.strip().lower() if user and user.strip() else None
        self.key = self.origin if self.user is None else f"{self.origin} {self.user}"
        self.directory = directory
        self.on_warning = on_warning
        #: The file could not be used: entries of this process only, counted conservatively.
        self.unusable = False
        self._local: list[Entry] = []

    @property
    def path(self) -> Path:
        return self.directory / LEDGER_FILE if self.directory is not None else Path(LEDGER_FILE)

    def _counts(self, key: str) -> bool:
        if key == self.key or key == self.origin:
            return True
        return self.user is None and key.startswith(self.origin + " ")

    def _change(self, add: Entry | None) -> Callable[[dict[str, Any]], list[Entry]]:
        now = time.time()

        def change(data: dict[str, Any]) -> list[Entry]:
            # Every key is pruned, not only the counted ones: nothing out of bounds is written back.
            kept = {k: [_entry(e) for e in v if _valid(e, now)] for k, v in data.items() if isinstance(v, list)}
            if add is not None:
                kept.setdefault(self.key, []).append(add)
            data.clear()
            data.update({k: v for k, v in kept.items() if v})
            return [e for k, v in data.items() if self._counts(k) for e in v]

        return change

    async def _entries(self, add: Entry | None = None) -> list[Entry]:
        if self.directory is not None and not self.unusable:
            path = self.path
            try:
                return await aio.call(update_json_file, path, self._change(add))
            except FileNotFoundError:
                pass  # no config directory yet: no other process has sent an answer from here
            except OSError as exc:
                self._give_up(path, exc)
        if add is not None:
            self._local.append(add)
        self._local = self._change(None)({self.key: self._local})
        return self._local

    def _give_up(self, path: Path, exc: OSError) -> None:
        self.unusable = True
        consequence = (
            "MFA answers other rack-gateway processes sent are not known, so this one allows itself one MFA try."
        )
        warn_unusable("ledger", path, exc, consequence, self.on_warning)

    async def check(self, kind: str) -> None:
        """Raise ``MfaFailed`` when sending one more answer of ``kind`` now could lock the account."""
        entries = await self._entries()
        failures = sorted(e[0] for e in entries if not e[1])
        if self.unusable and len(failures) >= UNUSABLE_FAILURES:
            raise MfaFailed(
                "not sending another MFA code: the MFA attempts of other processes cannot be counted "
                f"({LEDGER_FILE} is unusable), so one failed try is all this one allows",
                hint=f"Fix or remove {self.path}, then try again.",
            )
        attempts = sorted(e[0] for e in entries if e[2] == kind)
        if len(failures) >= LOCK_FAILURES - 1:
            raise MfaFailed(
                f"not sending another MFA code: {len(failures)} failed MFA attempts at this gateway in the last "
                f"5 minutes, and a {LOCK_FAILURES}th locks your account until an administrator unlocks it",
                hint=f"Wait until {_clock(failures[len(failures) - LOCK_FAILURES + 1] + WINDOW)}, then try again.",
            )
        if len(attempts) >= MAX_ATTEMPTS:
            raise MfaFailed(
                f"not sending another MFA code: the gateway accepts {MAX_ATTEMPTS} MFA attempts per 5 minutes "
                "and would refuse this one (and count it as a failure)",
                hint=f"Wait until {_clock(attempts[len(attempts) - MAX_ATTEMPTS] + WINDOW)}, then try again.",
            )

    async def record(self, kind: str, ok: bool) -> None:
        await self._entries([round(time.time(), 3), 1 if ok else 0, kind])


def _valid(entry: object, now: float) -> bool:
    """An answer sent within the window: stamped after ``now - WINDOW`` and at most ``WINDOW`` ahead.

    Ahead: the clock stepped back since (it still counts, for at most two windows).  Anything
    else (NaN, infinity, a year ahead or behind, not a number) is dropped: it can neither switch the
    count off nor refuse answers for years, and the wait the user is told stays within two windows.
    """
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and stamp_within(entry[0], now, behind=WINDOW, ahead=WINDOW) is not None
        and entry[1] in (0, 1)
        and entry[2] in ("code", "webauthn")
    )


def _entry(entry: Entry) -> Entry:
    """A valid entry as it is written back: ``[time, 0|1, kind]``."""
    return [entry[0], 1 if entry[1] else 0, entry[2]]


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")
