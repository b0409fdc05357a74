"""Keyring calls stay with the tokens a command uses, and never happen under the config lock (issue 19, defect 5).

The keyring is an in-memory backend (``keyring.set_keyring``) that counts every call and, at each
one, checks whether the config file's lock is held (an ``flock`` from a second descriptor fails
while any holder has it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest

from rgw.locks import FileLock
from rgw.testing import RunningGateway
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

RACKS = 20


class CountingKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self, lock_path: Path) -> None:
        super().__init__()
        self.items: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.under_lock: list[str] = []
        self.lock_path = lock_path

    def _count(self, what: str) -> None:
        self.calls[what] += 1
        probe = FileLock(self.lock_path)
        try:
            if not probe.try_acquire():
                self.under_lock.append(what)
        except FileNotFoundError:
            pass
        finally:
            probe.release()

    def get_password(self, service: str, username: str) -> str | None:
        self._count("get")
        return self.items.get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        self._count("set")
        self.items[f"{service}/{username}"] = password

    def delete_password(self, service: str, username: str) -> None:
        self._count("delete")
        if self.items.pop(f"{service}/{username}", None) is None:
            raise keyring.errors.PasswordDeleteError("no such item")

    def total(self) -> int:
        return sum(self.calls.values())


@pytest.fixture
def counting(cli: Cli) -> Iterator[CountingKeyring]:
    previous = keyring.get_keyring()
    backend = CountingKeyring(cli.config_dir / "config.json.lock")
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def seed(cli: Cli, url: str) -> None:
    cli.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    gateways = {f"r{n:02d}": {"url": url} for n in range(RACKS)}
    raw = {"current": "r00", "token_storage": "keyring", "gateways": gateways}
    (cli.config_dir / "config.json").write_text(json.dumps(raw))


async def test_keyring_calls_of_login_all_and_racks(
    cli: Cli, gateway: RunningGateway, counting: CountingKeyring
) -> None:
    seed(cli, gateway.url)
    # One rack at a time: the probe sees the config lock held by anyone, and with racks in parallel
    # another rack's task may hold it (writing its session) while this one's keyring call runs.
    result = await cli("login", "--all", "--parallel", "1")
    assert result.code == 0, result.err
    first = counting.total()
    # Twenty new sessions go to the keyring: one set each, nothing else (no session to fetch yet).
    assert counting.calls == Counter(set=RACKS), counting.calls
    assert counting.under_lock == []
    entries = cli.config()["gateways"]
    assert all("token" not in entry and entry["token_storage"] == "keyring" for entry in entries.values())

    counting.calls.clear()
    result = await cli("login", "--all", "--parallel", "1")  # again: each old session is fetched once (to revoke it)
    assert result.code == 0, result.err
    again = counting.total()
    assert counting.calls == Counter(get=RACKS, set=RACKS), counting.calls
    assert counting.under_lock == []

    counting.calls.clear()
    result = await cli("racks")
    assert result.code == 0, result.err
    assert result.out.count("logged in") == RACKS
    assert counting.total() == 0

    counting.calls.clear()
    result = await cli("test-auth")
    assert result.code == 0, result.err
    assert counting.calls == Counter(get=1), counting.calls  # the current rack's token only
    assert counting.under_lock == []
    print(f"keyring calls: login --all (new) {first}, login --all (again) {again}")
