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


class MemoryBackend(keyring.backend.KeyringBackend):
    """An OS keyring in memory, behind the real ``keyring`` package; notes the thread each call runs in."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.threads: list[tuple[str, bool]] = []
        self.release: Any = None  # a threading.Event a get waits for, when set

    def get_password(self, service: str, username: str) -> str | None:
        import threading

        self.threads.append((threading.current_thread().name, threading.current_thread().daemon))
        if self.release is not None:
            self.release.wait()
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.items:
            raise keyring.errors.PasswordDeleteError("not found")
        del self.items[(service, username)]


@pytest.fixture
def memory_keyring() -> Any:
    backend, previous = MemoryBackend(), keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_a_session_is_kept_under_the_service_rack_gateway_as_rack_and_url(memory_keyring: MemoryBackend) -> None:
    ring = secrets.Keyring()
    ring.set("prod", URL, "tok-1")
    assert memory_keyring.items == {("rack-gateway", f"prod {URL}"): "tok-1"}
    assert ring.get("prod", URL) == "tok-1"
    assert ring.get("prod", "https://other.example.com") is None
    assert memory_keyring.threads == [("rgw-keyring", True)] * 2  # never keeps the process alive
    ring.delete("prod", URL)
    assert memory_keyring.items == {}
    ring.delete("prod", URL)  # already gone: nothing to remove, no failure


def test_a_keyring_item_that_is_not_a_token_is_no_session(memory_keyring: MemoryBackend) -> None:
    memory_keyring.items[("rack-gateway", f"prod {URL}")] = "tok 1\n"
    assert secrets.Keyring().get("prod", URL) is None


def test_a_keyring_that_does_not_answer_in_time_is_unavailable(memory_keyring: MemoryBackend) -> None:
    import threading

    memory_keyring.release = threading.Event()
    try:
        with pytest.raises(KeyringUnavailable, match=r"^the OS keyring did not answer within 0\.05 s$"):
            secrets.Keyring(timeout=0.05).get("prod", URL)
    finally:
        memory_keyring.release.set()


def test_without_the_keyring_package_the_keyring_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "keyring", None)
    with pytest.raises(KeyringUnavailable) as info:
        secrets.Keyring().get("prod", URL)
    assert str(info.value) == "the keyring package is not installed (pip install 'rgw[keyring]')"


def test_a_fingerprint_is_the_first_16_hex_digits_of_the_token_s_sha256() -> None:
    import hashlib

    assert fingerprint("tok-1") == hashlib.sha256(b"tok-1").hexdigest()[:16]


async def test_a_keyring_that_fails_when_fetching_is_told_once_with_what_it_costs(tmp_path: Path) -> None:
    store, keyring, _ = make_store(tmp_path)
    await store.update(login("a", "tok-a"))
    await store.update(login("b", "tok-b"))
    later, broken, heard = make_store(tmp_path, broken=True)
    broken.items = keyring.items
    data = await later.read()
    assert heard == ["Warning: the OS keyring failed (NoKeyringError): sessions kept there cannot be used now."]
    assert broken.calls == Counter(get=1)
    assert [r.token for r in data.racks()] == [None, None]


async def test_a_rack_kept_in_the_file_does_not_stop_the_next_from_getting_its_keyring_token(tmp_path: Path) -> None:
    b = {"url": URL, STORAGE_FIELD: KEYRING, FINGERPRINT_FIELD: fingerprint("tok-b")}
    raw = {STORAGE_FIELD: KEYRING, "gateways": {"a": {"url": URL, "token": "tok-a"}, "b": b}}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "config.json").chmod(0o600)
    store, keyring, _ = make_store(tmp_path)
    keyring.items = {("b", URL): "tok-b"}
    data = await store.read()
    assert {r.name: r.token for r in data.racks()} == {"a": "tok-a", "b": "tok-b"}


async def test_deleting_stale_items_skips_a_newer_session_and_goes_on_with_the_next(tmp_path: Path) -> None:
    _, keyring, _ = make_store(tmp_path)
    keyring.items = {("a", URL): "tok-new", ("b", URL): "tok-b"}
    secrets.forget([("a", URL, fingerprint("tok-old")), ("b", URL, fingerprint("tok-b"))], keyring, [])
    assert keyring.items == {("a", URL): "tok-new"}


async def test_a_keyring_that_fails_when_deleting_says_which_item_to_remove_by_hand(tmp_path: Path) -> None:
    _, broken, _ = make_store(tmp_path, broken=True)
    warnings: list[str] = []
    secrets.forget([("prod", URL, None), ("b", URL, None)], broken, warnings)
    assert warnings == [
        f"Warning: the OS keyring failed (NoKeyringError); remove the item 'prod {URL}' of 'rack-gateway' by hand."
    ]
    assert broken.calls == Counter(get=1)
