"""Session tokens in the OS keyring instead of ``config.json`` (opt-in, per machine).

The Go CLI keeps tokens in ``config.json`` (0600) and so does rgw by default.  ``rack-gateway login
--token-storage keyring`` records ``"token_storage": "keyring"`` at the top of ``config.json``; from
then on every write moves each rack's token into the keyring (service ``rack-gateway``, account
``<rack> <url>``) and leaves ``"token_storage": "keyring"`` in the rack's entry in its place, and
every read fetches it back.  ``--token-storage file`` moves them back on the next write.

Every keyring call runs in its own daemon thread and is given ``KEYRING_TIMEOUT`` seconds (a locked
Secret Service or a D-Bus without one can hang); when none answers, or there is no keyring at all
(headless Linux, containers), the token stays in the 0600 file and the user is told once.  These
functions run in the config store's worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from rgw.text import is_token

SERVICE = "rack-gateway"
#: The machine's choice, at the top of config.json, and the marker in a rack entry whose token is there.
STORAGE_FIELD = "token_storage"
KEYRING = "keyring"
FILE = "file"
#: Seconds one keyring call may take before it counts as no keyring.
KEYRING_TIMEOUT = 3.0

T = TypeVar("T")


class KeyringUnavailable(Exception):
    """No keyring answered (none installed, none running, locked, or too slow)."""


def account(name: str, url: str) -> str:
    return f"{name} {url}"


def _timeboxed(call: Callable[[], T], timeout: float) -> T:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="rgw-keyring", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise KeyringUnavailable(f"the OS keyring did not answer within {timeout:g} s")
    if "error" in box:
        error = box["error"]
        raise KeyringUnavailable(f"the OS keyring failed ({type(error).__name__})") from None
    return box["value"]  # type: ignore[no-any-return]


def _keyring() -> Any:
    try:
        import keyring
    except ImportError:
        raise KeyringUnavailable("the keyring package is not installed (pip install 'rgw[keyring]')") from None
    return keyring


class Keyring:
    """The OS keyring, every call time-boxed; ``KeyringUnavailable`` for any failure."""

    def __init__(self, timeout: float = KEYRING_TIMEOUT) -> None:
        self.timeout = timeout

    def get(self, name: str, url: str) -> str | None:
        keyring = _keyring()
        value = _timeboxed(lambda: keyring.get_password(SERVICE, account(name, url)), self.timeout)
        return value if is_token(value) else None

    def set(self, name: str, url: str, token: str) -> None:
        keyring = _keyring()
        _timeboxed(lambda: keyring.set_password(SERVICE, account(name, url), token), self.timeout)

    def delete(self, name: str, url: str) -> None:
        keyring = _keyring()

        def delete() -> None:
            with contextlib.suppress(keyring.errors.PasswordDeleteError):  # not there: nothing to remove
                keyring.delete_password(SERVICE, account(name, url))

        _timeboxed(delete, self.timeout)


#: (url, token) of each rack whose entry keeps its token in the keyring, as read (token None: the
#: keyring had none, or did not answer).
Held = dict[str, tuple[str, str | None]]


def _gateways(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    gateways = raw.get("gateways")
    if not isinstance(gateways, dict):
        return {}
    return {name: entry for name, entry in gateways.items() if isinstance(entry, dict)}


def uses_keyring(raw: dict[str, Any]) -> bool:
    return raw.get(STORAGE_FIELD) == KEYRING or any(
        entry.get(STORAGE_FIELD) == KEYRING for entry in _gateways(raw).values()
    )


def fetch(raw: dict[str, Any], keyring: Keyring, warnings: list[str]) -> Held:
    """Fill in, in memory, the token of every entry that keeps it in the keyring."""
    held: Held = {}
    failed = False
    for name, entry in _gateways(raw).items():
        url = entry.get("url")
        if entry.get(STORAGE_FIELD) != KEYRING or "token" in entry or not isinstance(url, str):
            continue
        token = None
        if not failed:  # one keyring that does not answer is enough: never wait on it once per rack
            try:
                token = keyring.get(name, url)
            except KeyringUnavailable as exc:
                failed = True
                warnings.append(f"Warning: {exc}: sessions kept there cannot be used now.")
        held[name] = (url, token)
        if token is not None:
            entry["token"] = token
    return held


def file_tokens(raw: dict[str, Any]) -> dict[str, Any]:
    """Each rack's token as the file holds it (before a change), and the machine's choice."""
    return {"": raw.get(STORAGE_FIELD), **{name: entry.get("token") for name, entry in _gateways(raw).items()}}


def persist(raw: dict[str, Any], held: Held, before: dict[str, Any], keyring: Keyring, warnings: list[str]) -> None:
    """Before a write: each token goes where the machine's choice says; stale keyring items go.

    With ``keyring``: a new or changed token is set in the keyring and removed from the entry (if
    the keyring fails it stays in the file, with a warning, and is not tried again on later writes:
    a keyring that hangs must not cost every command seconds); when the choice was made in this
    write, every token in the file moves.  With ``file``: tokens fetched from the
    keyring are written into the file and removed from the keyring.  A session logged out, or a
    rack removed or moved to another URL, has its keyring item deleted.
    """
    want_keyring = raw.get(STORAGE_FIELD) == KEYRING
    migrate = before.get("") != raw.get(STORAGE_FIELD)
    gateways = _gateways(raw)
    broken = False
    for name, entry in gateways.items():
        token, url = entry.get("token"), entry.get("url")
        if not isinstance(token, str) or not isinstance(url, str):
            continue  # no session here (a held one whose token could not be fetched keeps its marker)
        if not want_keyring or broken:
            entry.pop(STORAGE_FIELD, None)
            continue
        if name not in held and before.get(name) == token and not migrate:
            continue  # left in the file by an earlier fallback: only a new session or --token-storage moves it
        if held.get(name) != (url, token):
            try:
                keyring.set(name, url, token)
            except KeyringUnavailable as exc:
                warnings.append(f"Warning: {exc}; the session stays in config.json (mode 0600).")
                broken = True
                entry.pop(STORAGE_FIELD, None)
                continue
        del entry["token"]
        entry[STORAGE_FIELD] = KEYRING
    for name, (url, _token) in held.items():
        kept = gateways.get(name)
        if kept is not None and kept.get(STORAGE_FIELD) == KEYRING and kept.get("url") == url:
            continue  # still kept there
        try:
            keyring.delete(name, url)
        except KeyringUnavailable as exc:
            warnings.append(f"Warning: {exc}; remove the item {account(name, url)!r} of {SERVICE!r} by hand.")
