"""Run the suite the way ``scripts/dev test``, nox and ``.ci/run`` do: in parallel, then serially.

``python -m tests.run [--workers N] [pytest arguments]`` runs pytest twice with the same arguments:

1. every test not marked ``serial``, spread over ``N`` processes by pytest-xdist (``-n N``);
2. the tests marked ``serial`` (``@pytest.mark.serial("why it cannot share the machine")``), one
   after another in this process's own pytest, nothing else running beside them.

A pass that selects no test (exit code 5) is not a failure unless neither pass selected any.  The exit
code is the first failing pass's.  ``--workers 0`` runs the first pass without xdist too.  The first
pass hands tests out by work stealing (``--dist worksteal``): a process done early takes tests queued
for another, so one slow test file does not hold the end of the run.  ``--only parallel|serial`` runs
one of the passes (a pass that then selects no test is no failure).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

NO_TESTS = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.run", add_help=False)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("parallel", "serial"))
    known, rest = parser.parse_known_args(argv)
    pytest = [sys.executable, "-m", "pytest"]
    parallel = ["-n", str(known.workers), "--dist", "worksteal"] if known.workers > 0 else ["-p", "no:xdist"]
    codes = []
    if known.only != "serial":
        codes.append(subprocess.call([*pytest, *parallel, "--serial=exclude", *rest]))
    if known.only != "parallel":
        codes.append(subprocess.call([*pytest, "-p", "no:xdist", "--serial=only", *rest]))
    failed = [code for code in codes if code not in (0, NO_TESTS)]
    if failed:
        return failed[0]
    # One pass asked for (``--only``) may well select nothing: no test is marked serial, say.
    return NO_TESTS if known.only is None and all(code == NO_TESTS for code in codes) else 0


if __name__ == "__main__":
    sys.exit(main())
