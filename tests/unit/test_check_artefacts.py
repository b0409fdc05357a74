"""scripts/check_artefacts.py, the release-artefact checks of scripts/smoke, on wheels made here."""

from __future__ import annotations

import importlib.util
import io
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_artefacts", REPO / "scripts" / "check_artefacts.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


METADATA = (
    "Metadata-Version: 2.4\nName: rgw\nRequires-Dist: httpx>=0.27\nRequires-Dist: fido2>=2.0; extra == 'webauthn'\n"
)
ENTRY_POINTS = "[console_scripts]\nrack-gateway = rgw.cli:main\n"


def wheel(path: Path, extra: dict[str, bytes] | None = None, *, leave_out: str = "", metadata: str = METADATA) -> Path:
    check = checker()
    files = {name: (REPO / name).read_bytes() for name in check.tracked_package_files() if name != leave_out}
    files["rgw-0.1.0.dist-info/METADATA"] = metadata.encode()
    files["rgw-0.1.0.dist-info/entry_points.txt"] = ENTRY_POINTS.encode()
    files.update(extra or {})
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def sdist(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name in ("pyproject.toml", "README.md", "rgw/__init__.py", "rgw/cli/__init__.py"):
            data = (REPO / name).read_bytes()
            info = tarfile.TarInfo(f"rgw-0.1.0/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_wheel_of_the_package_alone_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = wheel(tmp_path / "a.whl"), wheel(tmp_path / "b.whl")
    assert checker().main(str(sdist(tmp_path / "s.tar.gz")), str(one), str(two)) == 0
    assert "no tests" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("tests", "the wheel holds tests/test_x.py, outside the package"),
        ("missing", "the wheel lacks rgw/cli/version.py"),
        ("pinned", "a pinned requirement: Requires-Dist: httpx==0.29.0"),
        ("differs", "rgw/extra.py: only in the wheel built from the sdist"),
    ],
)
def test_each_problem_of_a_wheel_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, expected: str
) -> None:
    straight = wheel(tmp_path / "straight.whl")
    built = {
        "tests": lambda: wheel(tmp_path / "w.whl", {"tests/test_x.py": b""}),
        "missing": lambda: wheel(tmp_path / "w.whl", leave_out="rgw/cli/version.py"),
        "pinned": lambda: wheel(tmp_path / "w.whl", metadata=METADATA.replace("httpx>=0.27", "httpx==0.29.0")),
        "differs": lambda: wheel(tmp_path / "w.whl", {"rgw/extra.py": b"x = 1\n"}),
    }[kind]()
    assert checker().main(str(sdist(tmp_path / "s.tar.gz")), str(built), str(straight)) == 1
    assert f"smoke: {expected}" in capsys.readouterr().err.splitlines()
