"""Mutation testing, one module at a time, with mutmut 3 (`scripts/dev mutants [MODULE]`).

mutmut mutates every function of the configured files and runs, for each mutant, only the tests
that called that function in its stats run. Its own configuration is `[tool.mutmut]` in
pyproject.toml; this driver narrows it per module: `only_mutate` is the module and the test
selection is the module's own unit tests plus the few integration tests that exercise it
(MODULES below), so one module's run does not run the whole suite. It starts from a fresh
`mutants/` each time (mutmut's cache is keyed on one test selection), runs one mutant at a time
(the machine is shared) and then writes the module's row into docs/mutants.md.

Survivors shown to be equivalent (no test can tell them from the original) are listed in
docs/mutants.md, one table row each with the sentence why; they count as neither killed nor
surviving in the score.

Not part of .ci/run: a module takes minutes.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "mutants.md"

# module -> the tests that exercise it (its unit tests first, then integration tests that reach it).
MODULES: dict[str, list[str]] = {
    "rgw/text.py": [
        "tests/unit/test_text.py",
        "tests/unit/test_answers_secrets.py",
        "tests/unit/test_hostile_names.py",
        "tests/unit/test_secrets.py",
        "tests/unit/test_render.py",
        "tests/unit/test_trace.py",
    ],
    "rgw/urls.py": ["tests/unit/test_urls.py", "tests/unit/test_sign_in_return.py", "tests/unit/test_fuzz_urls.py"],
    "rgw/retry.py": ["tests/unit/test_retry.py"],
    "rgw/client/budget.py": ["tests/unit/test_budget.py"],
    "rgw/client/answers.py": [
        "tests/unit/test_answers.py",
        "tests/unit/test_client.py",
        "tests/unit/test_answers_secrets.py",
        "tests/unit/test_fuzz_client.py",
    ],
    "rgw/locks.py": [
        "tests/unit/test_locks.py",
        "tests/unit/test_file_defences.py",
        "tests/unit/test_shared.py",
        "tests/unit/test_config.py",
    ],
    "rgw/shared.py": ["tests/unit/test_shared.py"],
    "rgw/login/ledger.py": ["tests/unit/test_ledger.py", "tests/unit/test_fuzz_times.py"],
    "rgw/login/pending.py": [
        "tests/unit/test_pending.py",
        "tests/unit/test_file_defences.py",
        "tests/unit/test_fuzz_files.py",
        "tests/unit/test_fuzz_times.py",
    ],
    "rgw/login/poller.py": ["tests/unit/test_poller.py"],
    "rgw/login/walk.py": ["tests/unit/test_walk.py", "tests/unit/test_fuzz_walk.py"],
    "rgw/client/transport.py": ["tests/unit/test_transport.py"],
    "rgw/targets.py": [
        "tests/unit/test_targets.py",
        "tests/unit/test_urls.py",
        "tests/unit/test_mfa.py",
        "tests/unit/test_secrets.py",
    ],
    "rgw/secrets.py": ["tests/unit/test_secrets.py", "tests/unit/test_config.py"],
    "rgw/config.py": [
        "tests/unit/test_config.py",
        "tests/unit/test_file_defences.py",
        "tests/unit/test_fuzz_config.py",
        "tests/unit/test_secrets.py",
    ],
}


def _equivalent() -> set[str]:
    """The mutants docs/mutants.md shows equivalent: rows "| `NAME` | why |" of its equivalent tables."""
    return set(re.findall(r"^\| `(rgw\.[\w.]+__mutmut_\d+)` \|", DOC.read_text("utf-8"), re.MULTILINE))


def _mutmut_run(module: str, tests: list[str]) -> dict[str, int]:
    """Runs mutmut on one module in this process; returns mutant name -> exit code."""
    # Imported here: mutmut must set up sys.path (mutants/ first) before anything imports rgw.
    from mutmut import __main__ as mm
    from mutmut.configuration import config

    cfg = config()
    cfg.only_mutate = [module]
    cfg.pytest_add_cli_args_test_selection = list(tests)
    try:
        mm._run([], max_children=1)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
    meta = ROOT / "mutants" / (module + ".meta")
    codes: dict[str, int] = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    return codes


def _status(code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return str(status_by_exit_code[code])


def _commit() -> str:
    git = shutil.which("git") or "git"
    out = subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    dirty = subprocess.run([git, "status", "--porcelain", "rgw", "tests"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


# A timeout is a kill: the mutant made a test hang (the test's own timeout or mutmut's CPU limit).
KILLED = ("killed", "timeout")


def _row(module: str, codes: dict[str, int | None]) -> tuple[str, list[str]]:
    statuses = {name: _status(code) for name, code in codes.items()}
    shown = _equivalent()
    equivalent = sorted(n for n, s in statuses.items() if n in shown and s not in KILLED)
    killed = sum(1 for s in statuses.values() if s in KILLED)
    survivors = sorted(f"{statuses[n]}: {n}" for n, s in statuses.items() if s not in KILLED and n not in equivalent)
    untested = sum(1 for s in statuses.values() if s == "no tests")
    counted = len(statuses) - len(equivalent)
    score = f"{100 * killed / counted:.0f}%" if counted else "-"
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    row = (
        f"| {module} | {len(statuses)} | {killed} | {len(survivors) - untested} | {untested} | {len(equivalent)} "
        f"| {score} | {day} | {_commit()} |"
    )
    return row, survivors


def _upsert(module: str, row: str) -> None:
    text = DOC.read_text("utf-8")
    start, end = "<!-- mutants:table -->", "<!-- /mutants:table -->"
    head, rest = text.split(start, 1)
    table, tail = rest.split(end, 1)
    lines = [line for line in table.strip("\n").splitlines() if not line.startswith(f"| {module} |")]
    lines.append(row)
    header, body = lines[:2], sorted(lines[2:])
    DOC.write_text(head + start + "\n" + "\n".join(header + body) + "\n" + end + tail, "utf-8")


def main(argv: list[str]) -> int:
    modules = argv or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        print(f"not configured: {', '.join(unknown)}; configured: {', '.join(MODULES)}", file=sys.stderr)
        return 2
    for module in modules:
        # mutmut keys its stats cache on one test selection: each module starts afresh.
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        if len(modules) > 1:
            # One process per module: mutmut keeps its state in module globals.
            subprocess.run([sys.executable, __file__, module], cwd=ROOT, check=True)
            continue
        codes = _mutmut_run(module, MODULES[module])
        row, survivors = _row(module, dict(codes))
        _upsert(module, row)
        print(row)
        for name in survivors:
            print(name)
    return 0


if __name__ == "__main__":
    import os

    os.chdir(ROOT)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    raise SystemExit(main(sys.argv[1:]))
