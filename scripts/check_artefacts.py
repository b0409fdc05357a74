"""Check the release artefacts that ``python -m build`` wrote (called by scripts/smoke).

``python scripts/check_artefacts.py SDIST WHEEL DIRECT_WHEEL`` checks that:

- the wheel holds the package and nothing else: no tests, benchmarks or scripts, and every file of
  ``rgw/`` that git tracks (modules, ``py.typed``, data) is in it, byte for byte;
- its metadata keeps version ranges (no ``==`` pin) and names the console script;
- the sdist holds what a rebuild needs (pyproject.toml, README.md, the package) and the wheel built
  from it is the wheel built straight from the checkout: the same files with the same contents.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wheel_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as wheel:
        return {info.filename: wheel.read(info) for info in wheel.infolist() if not info.is_dir()}


def tracked_package_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "rgw"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [name for name in listed if (REPO / name).is_file()]


def check_wheel(files: dict[str, bytes]) -> list[str]:
    problems = []
    dist_info = [name for name in files if name.split("/")[0].endswith(".dist-info")]
    outside = [name for name in files if name not in dist_info and not name.startswith("rgw/")]
    problems += [f"the wheel holds {name}, outside the package" for name in outside]
    problems += [f"the wheel holds {name}" for name in files if "/tests/" in f"/{name}" or "__pycache__" in name]
    for name in tracked_package_files():
        if name not in files:
            problems.append(f"the wheel lacks {name}")
        elif files[name] != (REPO / name).read_bytes():
            problems.append(f"the wheel's {name} differs from the checkout's")
    metadata = next((files[name] for name in dist_info if name.endswith("/METADATA")), b"").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    problems += [f"a pinned requirement: {line}" for line in requires if "==" in line.split(";")[0]]
    entry_points = next((files[name] for name in dist_info if name.endswith("/entry_points.txt")), b"").decode()
    if "rack-gateway = rgw.cli:main" not in entry_points:
        problems.append("the wheel's entry points lack rack-gateway = rgw.cli:main")
    return problems


def check_sdist(path: Path) -> list[str]:
    with tarfile.open(path) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    needed = ["pyproject.toml", "README.md", "rgw/__init__.py", "rgw/cli/__init__.py"]
    return [f"the sdist lacks {name}" for name in needed if name not in names]


def main(sdist: str, wheel: str, direct: str) -> int:
    built, straight = wheel_files(Path(wheel)), wheel_files(Path(direct))
    problems = check_sdist(Path(sdist)) + check_wheel(built)
    for name in sorted(set(built) | set(straight)):
        if name not in built or name not in straight:
            where = "checkout" if name in straight else "sdist"
            problems.append(f"{name}: only in the wheel built from the {where}")
        elif built[name] != straight[name]:
            problems.append(f"{name}: differs between the wheel from the sdist and the wheel from the checkout")
    for problem in problems:
        print(f"smoke: {problem}", file=sys.stderr)
    if not problems:
        package = sum(1 for name in built if name.startswith("rgw/"))
        print(
            f"smoke: the wheel holds the package's {package} files and its metadata, no tests; "
            "the wheel built from the sdist is the same, file for file"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
