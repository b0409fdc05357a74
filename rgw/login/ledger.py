"""Every MFA answer this machine sent to a gateway: stop before the gateway locks the account.

A deployed gateway accepts at most 5 TOTP/backup-code answers per user per 5 minutes (successes
count), and 5 failures within 5 minutes lock the account until an administrator unlocks it; its
``/auth/cli/mfa`` calls all of that ``invalid_code``, so nothing in its answers says "one more and
you are locked".  One verification stays at 3 tries, but two in a row (a failed login, then another
one, or a step-up) could reach 5.  So each answer sent is written down, with its time and outcome,
in ``mfa-attempts.json`` in the config directory (shared by every ``rack-gateway`` process, see
``rgw.shared``), and an answer that could be the fifth failure, or one more than the gateway
accepts, is not sent: the user is told how long to wait instead.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rgw import aio
from rgw.client.budget import origin_key
from rgw.errors import MfaFailed
from rgw.shared import update_json_file

LEDGER_FILE = "mfa-attempts.json"
WINDOW = 300.0
#: Failures within the window that lock the account, and answers of one kind it accepts.
LOCK_FAILURES = 5
MAX_ATTEMPTS = 5

Entry = list[Any]  # [time, ok (0/1), kind ("code" | "webauthn")]


class MfaLedger:
    def __init__(self, url: str, directory: Path | None) -> None:
        self.key = origin_key(url)
        self.directory = directory
        self._local: list[Entry] = []

    async def _entries(self, add: Entry | None = None) -> list[Entry]:
        now = time.time()

        def change(data: dict[str, Any]) -> list[Entry]:
            raw = data.get(self.key)
            entries = [e for e in raw if _valid(e) and e[0] > now - WINDOW] if isinstance(raw, list) else []
            if add is not None:
                entries.append(add)
            if entries:
                data[self.key] = entries
            else:
                data.pop(self.key, None)
            return entries

        if self.directory is not None:
            with contextlib.suppress(OSError):
                return await aio.call(update_json_file, self.directory / LEDGER_FILE, change)
        self._local = change({self.key: self._local})
        return self._local

    async def check(self, kind: str) -> None:
        """Raise ``MfaFailed`` when sending one more answer of ``kind`` now could lock the account."""
        entries = await self._entries()
        failures = sorted(e[0] for e in entries if not e[1])
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


def _valid(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and isinstance(entry[0], int | float)
        and entry[1] in (0, 1)
        and entry[2] in ("code", "webauthn")
    )


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")
