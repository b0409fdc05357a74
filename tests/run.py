"""Run the suite the way ``scripts/dev test``, nox and ``.ci/run`` do: in parallel, then serially.

``python -m tests.run [--workers N] [pytest arguments]`` runs pytest twice with the same arguments:

1. every test not marked ``serial``, spread over ``N`` processes by pytest-xdist (``-n N``);
2. the tests marked ``serial`` (``@pytest.mark.serial("why it cannot share the machine")``), one
   after another in this process's own pytest, nothing else running beside them.

A pass that selects no test (exit code 5) is not a failure unless neither pass selected any.  The exit
code is the first failing pass's.  ``--workers 0`` runs the first pass without xdist too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

NO_TESTS = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.run", add_help=False)
    parser.add_argument("--workers", type=int, default=2)
    known, rest = parser.parse_known_args(argv)
    pytest = [sys.executable, "-m", "pytest"]
    parallel = ["-n", str(known.workers)] if known.workers > 0 else ["-p", "no:xdist"]
    codes = [
        subprocess.call([*pytest, *parallel, "--serial=exclude", *rest]),
        subprocess.call([*pytest, "-p", "no:xdist", "--serial=only", *rest]),
    ]
    failed = [code for code in codes if code not in (0, NO_TESTS)]
    if failed:
        return failed[0]
    return NO_TESTS if all(code == NO_TESTS for code in codes) else 0


if __name__ == "__main__":
    sys.exit(main())
