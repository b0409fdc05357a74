"""Keyring backends for tests of ``--token-storage keyring`` (select one with ``PYTHON_KEYRING_BACKEND``).

- ``rgw.testing.keyrings.JsonFileKeyring``: items in the JSON file named by ``RGW_TEST_KEYRING``
  (a stand-in for the Secret Service that a test can look into);
- ``rgw.testing.keyrings.HangingKeyring``: every call blocks (a locked keyring or a D-Bus that never
  answers), to show that rgw's calls are time-boxed;
- ``keyring.backends.fail.Keyring`` (keyring's own): no keyring at all, as on a headless server.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class JsonFileKeyring(KeyringBackend):
    priority = 1

    @property
    def path(self) -> Path:
        return Path(os.environ["RGW_TEST_KEYRING"])

    def _items(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return {}

    def _save(self, items: dict[str, str]) -> None:
        self.path.write_text(json.dumps(items, indent=2, sort_keys=True))

    def get_password(self, service: str, username: str) -> str | None:
        return self._items().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        items = self._items()
        items[f"{service}/{username}"] = password
        self._save(items)

    def delete_password(self, service: str, username: str) -> None:
        items = self._items()
        if items.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError("no such item")
        self._save(items)


class HangingKeyring(KeyringBackend):
    priority = 1

    def get_password(self, service: str, username: str) -> str | None:
        threading.Event().wait()
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        threading.Event().wait()

    def delete_password(self, service: str, username: str) -> None:
        threading.Event().wait()
