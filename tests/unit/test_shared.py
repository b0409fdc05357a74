"""rgw.shared.update_json_file: the locked read-modify-write of the small state files, success and failure."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from rgw.locks import FileLock
from rgw.shared import once_per_text, update_json_file


def test_a_new_file_is_created_0600_and_holds_the_change(tmp_path: Path) -> None:
    path = tmp_path / "state.json"

    def change(data: dict[str, Any]) -> int:
        data["n"] = data.get("n", 0) + 1
        return int(data["n"])

    assert update_json_file(path, change) == 1
    assert update_json_file(path, change) == 2
    assert json.loads(path.read_text()) == {"n": 2}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("content", [b"\x00garbage", b"[1, 2]", b"", b'"text"'])
def test_content_that_is_not_a_json_object_counts_as_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    assert update_json_file(path, dict) == {}
    assert update_json_file(path, lambda data: data.setdefault("k", "v")) == "v"
    assert json.loads(path.read_text()) == {"k": "v"}


def test_a_shorter_result_leaves_no_tail_of_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"long": "x" * 1000}))
    update_json_file(path, lambda data: data.clear())
    assert json.loads(path.read_text()) == {}


def test_a_change_that_raises_writes_nothing_and_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"kept": true}')

    def boom(data: dict[str, Any]) -> None:
        data["kept"] = False
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        update_json_file(path, boom)
    assert json.loads(path.read_text()) == {"kept": True}
    lock = FileLock(path, names_holder=False)
    assert lock.try_acquire()
    lock.release()
    assert json.loads(path.read_text()) == {"kept": True}  # a state file's lock never empties it


def test_a_symlink_in_its_place_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = tmp_path / "state.json"
    path.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic links") as info:
        update_json_file(path, lambda data: data.update(x=1))
    assert info.value.errno == errno.ELOOP
    assert victim.read_text() == "precious"


def test_a_directory_in_its_place_is_an_os_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()
    with pytest.raises(OSError, match="Is a directory"):
        update_json_file(path, dict)


def test_a_missing_directory_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        update_json_file(tmp_path / "nope" / "state.json", dict)


def test_a_lock_held_elsewhere_is_waited_for_only_so_long(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"a": 1}')
    held = FileLock(path, names_holder=False)
    assert held.try_acquire()
    try:
        with pytest.raises(OSError, match="stays locked") as info:
            update_json_file(path, lambda data: data.update(a=2), patience=0.05)
    finally:
        held.release()
    assert info.value.errno == errno.EWOULDBLOCK
    assert json.loads(path.read_text()) == {"a": 1}
    assert update_json_file(path, lambda data: data["a"]) == 1  # free again


def test_once_per_text_says_each_text_once() -> None:
    heard: list[str] = []
    say = once_per_text(heard.append)
    for text in ("a", "b", "a", "b", "c"):
        say(text)
    assert heard == ["a", "b", "c"]
    once_per_text(None)("nobody listens")  # no callback: nothing to do, no error


def test_a_number_that_is_not_finite_is_read_as_null_and_never_written_back(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"nan": NaN, "inf": Infinity, "minus": -Infinity, "huge": 1e999, "ok": 1.5}')
    seen = update_json_file(path, dict)
    assert seen == {"nan": None, "inf": None, "minus": None, "huge": None, "ok": 1.5}

    def refuse(name: str) -> object:
        raise AssertionError(f"{name} written back")

    assert json.loads(path.read_text(), parse_constant=refuse) == seen


def test_the_file_is_written_with_its_keys_sorted(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    update_json_file(path, lambda data: data.update({"b": 1, "a": {"z": 1, "y": 2}}))
    assert path.read_text() == '{"a": {"y": 2, "z": 1}, "b": 1}'


def test_an_unusable_state_file_is_said_with_its_path_reason_and_consequence_and_in_verbose(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from rgw.shared import warn_unusable

    caplog.set_level(logging.DEBUG, logger="rgw")
    heard: list[str] = []
    path = tmp_path / "ledger.json"
    warn_unusable(
        "ledger", path, OSError(errno.ELOOP, "Too many levels of symbolic links"), "counting alone.", heard.append
    )
    warn_unusable("budget", path, OSError("held too long"), "pacing alone.", heard.append)
    warn_unusable("budget", path, OSError("nobody listens"), "fine.", None)
    assert heard == [
        f"Warning: cannot use {path} (Too many levels of symbolic links): counting alone.",
        f"Warning: cannot use {path} (held too long): pacing alone.",
    ]
    assert [r.getMessage() for r in caplog.records if r.name == "rgw"] == [
        f"ledger: {heard[0]}",
        f"budget: {heard[1]}",
        f"budget: Warning: cannot use {path} (nobody listens): fine.",
    ]
