"""The suite started with SIGINT ignored (``nohup scripts/dev test &``, some CI runners) still gives the
processes its tests start a working Ctrl-C (tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import subprocess, sys
def test_a_started_process_gets_ctrl_c():
    code = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "True\\n"
"""


def test_processes_that_tests_start_get_ctrl_c_when_the_run_has_sigint_ignored(tmp_path: Path) -> None:
    # Under tests/, so that its conftest applies; named for this process (two Pythons' runs share a checkout).
    probe = REPO / "tests" / "unit" / f"test_probe_{os.getpid()}_{tmp_path.name}.py"
    probe.write_text(PROBE)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", str(probe)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    finally:
        probe.unlink()
    assert done.returncode == 0, done.stdout[-2000:]
