"""The test suite on every Python the package claims (``requires-python = ">=3.11"``), run by ``.ci/run``.

``nox -s tests`` runs ``tests-3.11`` (all of it, the browser tier included), ``tests-3.12`` and
``tests-3.13`` (all but the browser tier: it drives one Chromium, whatever the Python).  Each session
installs the locked versions of ``requirements-dev.txt`` (with uv when it is there, else pip), then the
project without dependencies, and runs ``python -m tests.run`` (parallel pass, then the ``serial`` one).
``RGW_TEST_WORKERS`` sets the number of test processes (default: twice the cores).  Arguments after
``--`` go to pytest: ``nox -s tests-3.12 -- tests/unit -x``.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True

PYTHONS = ["3.11", "3.12", "3.13"]
BROWSER_TIER = "3.11"
LOCK = "requirements-dev.txt"


def workers() -> str:
    return os.environ.get("RGW_TEST_WORKERS") or str(2 * (os.cpu_count() or 1))


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The suite on one Python: 3.11 with the browser tier, 3.12 and 3.13 without it."""
    session.install("--require-hashes", "-r", LOCK)
    session.install("--no-deps", "-e", ".")
    marker = [] if session.python == BROWSER_TIER else ["-m", "not browser"]
    session.run("python", "-m", "tests.run", "--workers", workers(), *marker, *session.posargs)
