"""Safety state that cannot be used says so and counts conservatively (issue 19, defect 4).

``mfa-attempts.json`` (the MFA ledger) made unusable three ways a user's machine can: a directory in
its place, a symlink in its place (never followed), its lock held by another process.  The step-up
then says so once on stderr and sends one MFA answer, not three; the request budget's file the same
(said once, the command still works).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rgw.login.ledger import LEDGER_FILE
from tests.integration.test_mfa import MfaCli, ScriptedPrompter, admin_session, create_token, mcli, wrong_code

pytestmark = pytest.mark.anyio
__all__ = ["mcli"]  # the fixture

HOLD = (
    "import sys, fcntl, os; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
    "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()"
)


def a_directory(path: Path) -> Callable[[], None]:
    path.unlink()  # the login's answer was written down: the ledger is there, now it is a directory
    path.mkdir()
    return lambda: None


def a_symlink(path: Path) -> Callable[[], None]:
    target = path.parent / "elsewhere.json"
    target.write_text("{}")
    path.unlink()
    path.symlink_to(target)
    return lambda: None


def held_by_another_process(path: Path) -> Callable[[], None]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"held\n"

    def release() -> None:
        holder.communicate(timeout=30)  # closes its stdin: it exits, and the lock with it

    return release


@pytest.mark.parametrize("spoil", [a_directory, a_symlink, held_by_another_process])
async def test_an_unusable_mfa_ledger_is_said_once_and_allows_one_try(
    mcli: MfaCli, spoil: Callable[[Path], Callable[[], None]]
) -> None:
    secret = await admin_session(mcli)
    bad = wrong_code(secret)
    release = spoil(mcli.config_dir / LEDGER_FILE)
    try:
        prompter = ScriptedPrompter([bad, bad, bad])
        result = await create_token(mcli, prompter=prompter)
    finally:
        release()
    assert result.code == 9
    assert len(prompter.prompts) == 1, result.err  # one answer sent, not three
    warnings = [line for line in result.err.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1, result.err
    assert LEDGER_FILE in warnings[0]
    assert "one MFA try" in warnings[0]
    assert "not sending another MFA code" in result.err
    assert os.path.lexists(mcli.config_dir / LEDGER_FILE)  # left as it was found
