"""CLI subprocesses for tests that need many real processes at once.

Every process started here is reaped after the test, passed or failed (see the ``_reap_spawned``
fixture in conftest.py), so a failed assertion leaves neither a running CLI nor an open pipe behind
to be garbage-collected during the next test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.leaks import WATCH

SPAWNED: list[subprocess.Popen[str]] = []


def cli_env(email: str = "developer@example.com", delay: float = 0.0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_", "DISPLAY"))}
    env["BROWSER"] = f"{sys.executable} -m rgw.testing.scripted_browser --email {email} --delay {delay} %s"
    return env


def spawn(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgw", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or cli_env(),
    )
    SPAWNED.append(proc)
    return proc


def reap() -> None:
    while SPAWNED:
        proc = SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
        # What the test did not read itself (the leak check sees what it read where it read it).
        argv = [str(arg) for arg in proc.args[5:]] if isinstance(proc.args, list) else []
        WATCH.record(argv, out or "", err or "", where="subprocess (reaped)")
