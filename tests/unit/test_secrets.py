"""Tokens in the OS keyring (rgw.secrets through ConfigStore): fetched when used, never under the lock.

The keyring is an in-memory fake of ``rgw.secrets.Keyring`` that counts its calls and checks, at each
one, that nobody holds the config file's lock.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.errors
import pytest

from rgw import secrets
from rgw.config import ConfigData, ConfigStore
from rgw.locks import FileLock
from rgw.models import RackConfig
from rgw.secrets import FINGERPRINT_FIELD, KEYRING, STORAGE_FIELD, KeyringUnavailable, fingerprint

pytestmark = pytest.mark.anyio
URL = "https://gw.example.com"


class FakeKeyring(secrets.Keyring):
    def __init__(self, lock_path: Path, *, broken: bool = False) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.calls: Counter[str] = Counter()
        self.lock_path = lock_path
        self.broken = broken

    def _call(self, what: str) -> None:
        self.calls[what] += 1
        probe = FileLock(self.lock_path)
        try:
            assert probe.try_acquire(), f"keyring {what} with the config lock held"
        finally:
            probe.release()
        if self.broken:
            raise KeyringUnavailable("the OS keyring failed (NoKeyringError)")

    def get(self, name: str, url: str) -> str | None:
        self._call("get")
        return self.items.get((name, url))

    def set(self, name: str, url: str, token: str) -> None:
        self._call("set")
        self.items[(name, url)] = token

    def delete(self, name: str, url: str) -> None:
        self._call("delete")
        self.items.pop((name, url), None)


def make_store(directory: Path, *, broken: bool = False) -> tuple[ConfigStore, FakeKeyring, list[str]]:
    heard: list[str] = []
    keyring = FakeKeyring(directory / "config.json.lock", broken=broken)
    return ConfigStore(directory, keyring=keyring, on_warning=heard.append), keyring, heard


def login(name: str, token: str, storage: str | None = KEYRING) -> Any:
    def change(data: ConfigData) -> None:
        data.put_rack(RackConfig(name=name, url=URL, token=token, email="dev@example.com"))
        if storage is not None:
            data.raw[STORAGE_FIELD] = storage

    return change


def on_disk(directory: Path) -> dict[str, Any]:
    return dict(json.loads((directory / "config.json").read_text()))


async def test_a_new_session_goes_to_the_keyring_after_the_write(tmp_path: Path) -> None:
    store, keyring, heard = make_store(tmp_path)
    await store.update(login("prod", "tok-1"))
    entry = on_disk(tmp_path)["gateways"]["prod"]
    assert "token" not in entry
    assert entry[STORAGE_FIELD] == KEYRING
    assert entry[FINGERPRINT_FIELD] == fingerprint("tok-1")
    assert "tok-1" not in (tmp_path / "config.json").read_text()
    assert keyring.items == {("prod", URL): "tok-1"}
    assert keyring.calls == Counter(set=1)
    assert heard == []


async def test_reads_fetch_only_the_tokens_asked_for_once_per_run(tmp_path: Path) -> None:
    store, keyring, _ = make_store(tmp_path)
    await store.update(login("a", "tok-a"))
    await store.update(login("b", "tok-b"))
    later, keyring2, _ = make_store(tmp_path)  # another command
    keyring2.items = keyring.items
    data = await later.read(tokens=())
    assert keyring2.calls == Counter()
    rack = data.rack("a")
    assert rack is not None
    assert rack.token is None
    assert rack.logged_in  # kept in the keyring: logged in, fetched only when used
    data = await later.read(tokens=["a"])
    assert data.rack("a").token == "tok-a"  # type: ignore[union-attr]
    assert data.rack("b").token is None  # type: ignore[union-attr]
    await later.read(tokens=["a"])
    assert keyring2.calls == Counter(get=1)  # once per run
    data = await later.read()
    assert {r.name: r.token for r in data.racks()} == {"a": "tok-a", "b": "tok-b"}
    assert keyring2.calls == Counter(get=2)


async def test_changes_see_the_tokens_this_run_fetched_and_nothing_is_fetched_under_the_lock(tmp_path: Path) -> None:
    store, keyring, _ = make_store(tmp_path)
    await store.update(login("prod", "tok-1"))
    other, keyring2, _ = make_store(tmp_path)
    keyring2.items = keyring.items
    await other.read(tokens=["prod"])
    keyring2.calls.clear()
    assert await other.update(lambda data: data.mark_rejected("prod", "tok-1", "session revoked", "now"))
    assert keyring2.calls == Counter()
    entry = on_disk(tmp_path)["gateways"]["prod"]
    assert entry["session_rejected"]["reason"] == "session revoked"
    assert "token" not in entry
    assert entry[FINGERPRINT_FIELD] == fingerprint("tok-1")


async def test_a_session_another_process_replaced_is_not_mistaken_for_ours(tmp_path: Path) -> None:
    store, keyring, _ = make_store(tmp_path)
    await store.update(login("prod", "tok-1"))
    other, keyring2, _ = make_store(tmp_path)
    keyring2.items = keyring.items
    await other.read(tokens=["prod"])  # tok-1, known to `other`
    await store.update(login("prod", "tok-2"))  # meanwhile a new login elsewhere
    assert not await other.update(lambda data: data.mark_rejected("prod", "tok-1", "session revoked", "now"))
    assert "session_rejected" not in on_disk(tmp_path)["gateways"]["prod"]
    data = await other.read(tokens=["prod"])  # the stale token is fetched anew
    assert data.rack("prod").token == "tok-2"  # type: ignore[union-attr]


async def test_logout_deletes_the_item_after_the_write(tmp_path: Path) -> None:
    store, keyring, _ = make_store(tmp_path)
    await store.update(login("prod", "tok-1"))
    keyring.calls.clear()
    await store.update(lambda data: data.clear_session("prod"))
    entry = on_disk(tmp_path)["gateways"]["prod"]
    assert STORAGE_FIELD not in entry
    assert FINGERPRINT_FIELD not in entry
    assert keyring.items == {}
    assert keyring.calls == Counter(get=1, delete=1)


async def test_an_item_a_newer_login_stored_is_not_deleted(tmp_path: Path) -> None:
    store, keyring, _ = make_store(tmp_path)
    await store.update(login("prod", "tok-1"))
    moves = secrets.Moves(drop=[("prod", URL, fingerprint("tok-1"))])
    keyring.items[("prod", URL)] = "tok-2"  # another process logged in again since
    secrets.forget(moves.drop, keyring, [])
    assert keyring.items == {("prod", URL): "tok-2"}


async def test_back_to_file_storage_brings_the_tokens_back(tmp_path: Path) -> None:
    store, keyring, _ = make_store(tmp_path)
    await store.update(login("a", "tok-a"))
    await store.update(login("b", "tok-b"))
    fresh, keyring2, _ = make_store(tmp_path)
    keyring2.items = keyring.items
    await fresh.update(lambda data: data.raw.update({STORAGE_FIELD: "file"}))
    gateways = on_disk(tmp_path)["gateways"]
    assert {name: entry.get("token") for name, entry in gateways.items()} == {"a": "tok-a", "b": "tok-b"}
    assert all(STORAGE_FIELD not in entry and FINGERPRINT_FIELD not in entry for entry in gateways.values())
    assert keyring2.items == {}


async def test_without_a_keyring_the_session_stays_in_the_file_and_is_not_retried(tmp_path: Path) -> None:
    store, keyring, heard = make_store(tmp_path, broken=True)
    await store.update(login("prod", "tok-1"))
    entry = on_disk(tmp_path)["gateways"]["prod"]
    assert entry["token"] == "tok-1"
    assert STORAGE_FIELD not in entry
    assert heard == ["Warning: the OS keyring failed (NoKeyringError); the session stays in config.json (mode 0600)."]
    keyring.calls.clear()
    await store.update(lambda data: data.raw.update(other=1))  # a later write does not try again
    assert keyring.calls == Counter()
    assert on_disk(tmp_path)["gateways"]["prod"]["token"] == "tok-1"


async def test_an_entry_of_an_earlier_version_gets_its_fingerprint(tmp_path: Path) -> None:
    raw = {STORAGE_FIELD: KEYRING, "gateways": {"prod": {"url": URL, STORAGE_FIELD: KEYRING}}}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    store, keyring, _ = make_store(tmp_path)
    keyring.items[("prod", URL)] = "tok-1"
    await store.read(tokens=["prod"])
    assert await store.update(lambda data: data.mark_rejected("prod", "tok-1", "session expired", "now"))
    entry = on_disk(tmp_path)["gateways"]["prod"]
    assert entry[FINGERPRINT_FIELD] == fingerprint("tok-1")
    assert "token" not in entry
    assert keyring.items == {("prod", URL): "tok-1"}


class FailingBackend(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.calls += 1
        raise keyring.errors.KeyringLocked("locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls += 1
        raise keyring.errors.KeyringLocked("locked")

    def delete_password(self, service: str, username: str) -> None:
        self.calls += 1
        raise keyring.errors.KeyringLocked("locked")


def test_a_keyring_that_failed_once_is_not_asked_again_in_that_run() -> None:
    backend, previous = FailingBackend(), keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        ring = secrets.Keyring()
        for call in (lambda: ring.get("a", URL), lambda: ring.set("b", URL, "t"), lambda: ring.delete("c", URL)):
            with pytest.raises(KeyringUnavailable, match=r"the OS keyring failed \(KeyringLocked\)"):
                call()
        assert backend.calls == 1
        with pytest.raises(KeyringUnavailable):
            secrets.Keyring().get("a", URL)  # another run asks again
    finally:
        keyring.set_keyring(previous)
    assert backend.calls == 2


async def test_a_command_and_logout_fetch_only_the_selected_rack_s_token(tmp_path: Path) -> None:
    from rgw.targets import Selection, read_command_target, read_stored_session

    store, keyring, _ = make_store(tmp_path)
    await store.update(login("a", "tok-a"))
    await store.update(login("b", "tok-b"))
    for read in (read_command_target, read_stored_session):
        later, keyring2, _ = make_store(tmp_path)  # another command
        keyring2.items = keyring.items
        await read(later, Selection(rack="b"))  # type: ignore[operator]
        assert keyring2.calls == Counter(get=1)
        data = await later.read(tokens=())
        assert {r.name: r.token for r in data.racks()} == {"a": None, "b": "tok-b"}
