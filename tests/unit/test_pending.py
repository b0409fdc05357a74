"""rgw.login.pending.PendingLogins: a login in progress kept for its own rack and URL, read back as untrusted."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from rgw.login.pending import RESUME_MAX_AGE, PendingLogin, PendingLogins, listener_uri
from rgw.models import LoginStart

pytestmark = pytest.mark.anyio
RACK, URL = "prod", "https://gw.example.com"
STATE, VERIFIER = "S" * 43, "V" * 64
LISTENER = "http://127.0.0.1:8080/" + "C" * 22
NOW = 1_800_000_000.0
START = LoginStart(URL + "/in?state=x", STATE, VERIFIER, loopback=True)


def pending_at(directory: Path, now: float = NOW, **kwargs: Any) -> PendingLogins:
    return PendingLogins(directory, RACK, URL, clock=lambda: now, **kwargs)


def record(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "format": 1,
        "rack": RACK,
        "url": URL,
        "auth_url": START.auth_url,
        "state": STATE,
        "code_verifier": VERIFIER,
        "loopback": True,
        "started_at": NOW - 1,
        "listener": LISTENER,
    }
    return {**base, **changes}


def plant(pending: PendingLogins, content: dict[str, object]) -> None:
    pending.path.write_text(json.dumps(content))
    pending.path.chmod(0o600)


def test_the_record_s_file_is_named_by_a_hash_of_its_rack_and_url(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"prod\0https://gw.example.com").hexdigest()[:16]
    assert pending_at(tmp_path).path == tmp_path / f"pending-{digest}.json"
    others = {PendingLogins(tmp_path, "dev", URL).path, PendingLogins(tmp_path, RACK, URL + ":8443").path}
    assert pending_at(tmp_path).path not in others
    assert len(others) == 2


def test_a_pending_login_is_resumable_for_ten_minutes_by_default(tmp_path: Path) -> None:
    assert RESUME_MAX_AGE == 600.0
    assert PendingLogins(tmp_path, RACK, URL).max_age == RESUME_MAX_AGE


async def test_a_saved_login_is_written_private_with_every_field_and_loaded_back_as_it_was(tmp_path: Path) -> None:
    pending = pending_at(tmp_path)
    saved = await pending.save(START, LISTENER)
    assert saved == PendingLogin(RACK, URL, START, NOW, LISTENER)
    assert stat.S_IMODE(os.stat(pending.path).st_mode) == 0o600
    assert json.loads(pending.path.read_text()) == record(started_at=NOW)
    assert await pending_at(tmp_path, NOW + 1).load() == saved


async def test_saving_replaces_the_older_record_whole(tmp_path: Path) -> None:
    pending = pending_at(tmp_path)
    plant(pending, record(extra="kept?"))
    await pending.save(LoginStart(URL + "/again", "T" * 43, "W" * 64))
    assert json.loads(pending.path.read_text()) == record(
        auth_url=URL + "/again", state="T" * 43, code_verifier="W" * 64, loopback=False, started_at=NOW, listener=None
    )


async def test_a_login_without_loopback_keeps_no_listener(tmp_path: Path) -> None:
    pending = pending_at(tmp_path)
    start = LoginStart(START.auth_url, STATE, VERIFIER, loopback=False)
    saved = await pending.save(start, LISTENER)
    assert saved.listener is None
    assert json.loads(pending.path.read_text())["listener"] is None
    plant(pending, record(loopback=False))  # a listener planted beside a login without loopback
    found = await pending.load()
    assert found is not None
    assert found.listener is None
    assert found.start.loopback is False


async def test_a_listener_that_is_not_a_loopback_listener_s_uri_is_not_saved(tmp_path: Path) -> None:
    saved = await pending_at(tmp_path).save(START, "http://evil.example:8080/" + "C" * 22)
    assert saved.listener is None


async def test_no_record_is_no_pending_login_and_creates_no_file(tmp_path: Path) -> None:
    pending = pending_at(tmp_path)
    assert await pending.load() is None
    assert not pending.path.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"format": 2},
        {"format": None},
        {"rack": "dev"},
        {"url": "https://other.example.com"},
        {"auth_url": None},
        {"state": 7},
        {"code_verifier": None},
        {"state": "has space"},
        {"code_verifier": "é" * 43},
        {"started_at": "yesterday"},
    ],
    ids=repr,
)
async def test_a_record_for_another_rack_url_or_format_or_with_a_bad_field_is_deleted_and_ignored(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    pending = pending_at(tmp_path)
    plant(pending, record(**changes))
    assert await pending.load() is None
    assert not pending.path.exists()


async def test_a_login_is_resumed_only_while_younger_than_max_age_and_never_from_the_future(tmp_path: Path) -> None:
    pending = pending_at(tmp_path, max_age=100.0)
    for started, resumed in [(NOW - 99.5, True), (NOW, True), (NOW - 100.0, False), (NOW + 0.5, False)]:
        plant(pending, record(started_at=started))
        found = await pending.load()
        assert (found is not None) is resumed, started
        if found is not None:
            assert found.started_at == started
    plant(pending, record(started_at=NOW - 599))
    assert await pending_at(tmp_path).load() is not None  # the default: ten minutes
    plant(pending, record(started_at=NOW - 601))
    assert await pending_at(tmp_path).load() is None


async def test_only_a_loopback_of_true_is_a_loopback_login(tmp_path: Path) -> None:
    pending = pending_at(tmp_path)
    plant(pending, record(loopback=1))
    found = await pending.load()
    assert found is not None
    assert found.start == LoginStart(START.auth_url, STATE, VERIFIER, loopback=False)
    assert found.listener is None


async def test_a_resumed_loopback_login_keeps_its_listener(tmp_path: Path) -> None:
    pending = pending_at(tmp_path)
    plant(pending, record())
    assert await pending.load() == PendingLogin(RACK, URL, START, NOW - 1, LISTENER)


async def test_a_symlink_in_the_record_s_place_is_neither_followed_nor_removed(tmp_path: Path) -> None:
    pending = pending_at(tmp_path)
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(record()))
    pending.path.symlink_to(target)
    assert await pending.load() is None
    await pending.delete()
    assert pending.path.is_symlink()
    assert json.loads(target.read_text()) == record()


async def test_delete_removes_the_record_and_a_missing_one_is_no_error(tmp_path: Path) -> None:
    pending = pending_at(tmp_path)
    await pending.save(START)
    await pending.delete()
    assert not pending.path.exists()
    await pending.delete()


@pytest.mark.parametrize(
    "uri",
    [
        LISTENER,
        "http://127.0.0.1:1/" + "a" * 16,
        "http://127.0.0.1:65535/" + "A-_9" * 16,
    ],
)
def test_a_loopback_listener_s_uri_is_taken_as_it_is(uri: str) -> None:
    assert listener_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        None,
        8080,
        "http://127.0.0.1:65536/" + "C" * 22,
        "http://127.0.0.1:99999/" + "C" * 22,
        "http://127.0.0.1:0/" + "C" * 22,
        "http://127.0.0.1:08080/" + "C" * 22,
        "http://localhost:8080/" + "C" * 22,
        "https://127.0.0.1:8080/" + "C" * 22,
        "http://127.0.0.1/" + "C" * 22,
        "http://127.0.0.1:8080/" + "C" * 15,
        "http://127.0.0.1:8080/" + "C" * 65,
        "http://127.0.0.1:8080/" + "C" * 22 + "?x",
        "http://127.0.0.1:8080/" + "C" * 22 + "\n",
    ],
    ids=repr,
)
def test_anything_else_is_no_listener(uri: object) -> None:
    assert listener_uri(uri) is None
