"""Session tokens in the OS keyring instead of ``config.json`` (opt-in, per machine).

The Go CLI keeps tokens in ``config.json`` (0600) and so does rgw by default.  ``rack-gateway login
--token-storage keyring`` records ``"token_storage": "keyring"`` at the top of ``config.json``; from
then on every write moves each new session's token into the keyring (service ``rack-gateway``,
account ``<rack> <url>``) and leaves ``"token_storage": "keyring"`` in the rack's entry in its place,
with ``"token_sha256"``, the first 16 hex digits of the token's SHA-256 (which session the keyring
holds; nothing to log in with).  ``--token-storage file`` moves them back on the next write.

The keyring is never called with the config file's lock held (``ConfigStore``): a token is fetched
only when a command uses that rack (``fetch``, at most once per run), a change under the lock sees
the tokens this run fetched where the fingerprint says they are still current (``fill``), and what
the keyring must do is decided under the lock (``settle``) and done after it (``carry_out``, then
``record`` under the lock again, then ``forget``).  A new session is therefore in the 0600 file for
the moment between the two writes.

Every keyring call runs in its own daemon thread and is given ``KEYRING_TIMEOUT`` seconds (a locked
Secret Service or a D-Bus without one can hang); when none answers, or there is no keyring at all
(headless Linux, containers), the token stays in the 0600 file and the user is told once.  These
functions block: they run in a worker thread (``rgw.aio.call``), never on the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rgw.text import is_token

SERVICE = "rack-gateway"
#: The machine's choice, at the top of config.json, and the marker in a rack entry whose token is there.
STORAGE_FIELD = "token_storage"
KEYRING = "keyring"
FILE = "file"
#: Beside the marker: the first 16 hex digits of the held token's SHA-256 (which session it is).
FINGERPRINT_FIELD = "token_sha256"
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
    """The OS keyring, every call time-boxed; ``KeyringUnavailable`` for any failure.

    One failure is enough for a run: later calls fail at once with the same reason, so a keyring
    that hangs costs a command ``timeout`` seconds once, not once per rack.
    """

    def __init__(self, timeout: float = KEYRING_TIMEOUT) -> None:
        self.timeout = timeout
        self.failure: KeyringUnavailable | None = None

    def _run(self, call: Callable[[Any], T]) -> T:
        if self.failure is not None:
            raise KeyringUnavailable(str(self.failure))
        try:
            keyring = _keyring()
            return _timeboxed(lambda: call(keyring), self.timeout)
        except KeyringUnavailable as exc:
            self.failure = exc
            raise

    def get(self, name: str, url: str) -> str | None:
        value = self._run(lambda keyring: keyring.get_password(SERVICE, account(name, url)))
        return value if is_token(value) else None

    def set(self, name: str, url: str, token: str) -> None:
        self._run(lambda keyring: keyring.set_password(SERVICE, account(name, url), token))

    def delete(self, name: str, url: str) -> None:
        def delete(keyring: Any) -> None:
            with contextlib.suppress(keyring.errors.PasswordDeleteError):  # not there: nothing to remove
                keyring.delete_password(SERVICE, account(name, url))

        self._run(delete)


#: Tokens this run fetched from (or put into) the keyring, by (rack, url).
Known = dict[tuple[str, str], str]


def fingerprint(token: str) -> str:
    """What a keyring-held entry keeps in the file to say which session the keyring holds (not secret)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _gateways(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    gateways = raw.get("gateways")
    if not isinstance(gateways, dict):
        return {}
    return {name: entry for name, entry in gateways.items() if isinstance(entry, dict)}


def _kept(entry: dict[str, Any]) -> bool:
    return entry.get(STORAGE_FIELD) == KEYRING and isinstance(entry.get("url"), str)


def uses_keyring(raw: dict[str, Any]) -> bool:
    return raw.get(STORAGE_FIELD) == KEYRING or any(_kept(entry) for entry in _gateways(raw).values())


def missing(raw: dict[str, Any], names: Iterable[str] | None, known: Known) -> list[tuple[str, str]]:
    """(rack, url) of the racks in ``names`` (None: all) whose token is in the keyring and not yet fetched."""
    gateways = _gateways(raw)
    wanted = gateways if names is None else {n: gateways[n] for n in names if n in gateways}
    return [
        (name, entry["url"])
        for name, entry in wanted.items()
        if _kept(entry) and "token" not in entry and _stale(entry, known.get((name, entry["url"])))
    ]


def _stale(entry: dict[str, Any], token: str | None) -> bool:
    """Whether ``token`` (fetched earlier, or None) is not the session the entry says the keyring holds."""
    mark = entry.get(FINGERPRINT_FIELD)
    return token is None or (mark is not None and mark != fingerprint(token))


def fetch(wanted: list[tuple[str, str]], keyring: Keyring, warnings: list[str]) -> Known:
    """Blocking, never under the config lock: the keyring's token of each (rack, url) it has one for."""
    found: Known = {}
    for name, url in wanted:
        try:
            token = keyring.get(name, url)
        except KeyringUnavailable as exc:  # one keyring that does not answer is enough: never once per rack
            warnings.append(f"Warning: {exc}: sessions kept there cannot be used now.")
            break
        if token is not None:
            found[(name, url)] = token
    return found


def fill(raw: dict[str, Any], known: Known) -> dict[str, str]:
    """Put the known tokens into the entries that keep theirs in the keyring (in memory only).

    Only where the entry's fingerprint says the keyring holds that very session (another process
    may have stored a newer one since this one fetched it).  Returns the tokens filled in, by rack.
    """
    filled: dict[str, str] = {}
    for name, entry in _gateways(raw).items():
        if not _kept(entry) or "token" in entry:
            continue
        token = known.get((name, entry["url"]))
        if token is not None and not _stale(entry, token):
            entry["token"] = filled[name] = token
    return filled


@dataclass
class Moves:
    """Keyring work an update leaves for after the config lock is released."""

    #: New sessions to put into the keyring (they are in the file until they are there).
    store: list[tuple[str, str, str]] = field(default_factory=list)
    #: Sessions to bring back into the file (``--token-storage file``): (rack, url, fingerprint).
    bring: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: Keyring items no entry points at any more (logged out, removed, moved): (rack, url, fingerprint).
    drop: list[tuple[str, str, str | None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.store or self.bring or self.drop)


def held(raw: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """(url, fingerprint) of each entry the file says keeps its token in the keyring."""
    return {
        name: (entry["url"], entry.get(FINGERPRINT_FIELD)) for name, entry in _gateways(raw).items() if _kept(entry)
    }


def file_tokens(raw: dict[str, Any]) -> dict[str, Any]:
    """Each rack's token as the file holds it (before a change), and the machine's choice."""
    return {"": raw.get(STORAGE_FIELD), **{name: entry.get("token") for name, entry in _gateways(raw).items()}}


def settle(
    raw: dict[str, Any], before_held: dict[str, tuple[str, str | None]], filled: dict[str, str], before: dict[str, Any]
) -> Moves:
    """Under the lock, before the write, without the keyring: each entry as the machine's choice says.

    A token the keyring already holds (filled in by ``fill``) goes back to being a marker; a new one
    stays in the file until ``ConfigStore`` has put it in the keyring (``Moves.store``), unless it
    was left in the file by an earlier fallback (a keyring that failed is not tried on every
    write: only a new session or ``--token-storage`` moves it).  With ``file``, held tokens come
    back (``Moves.bring``).  Keyring items nobody points at any more are dropped afterwards.
    """
    want_keyring = raw.get(STORAGE_FIELD) == KEYRING
    migrate = before.get("") != raw.get(STORAGE_FIELD)
    moves = Moves()
    gateways = _gateways(raw)
    for name, entry in gateways.items():
        token, url = entry.get("token"), entry.get("url")
        if not isinstance(url, str):
            continue
        if isinstance(token, str):
            if want_keyring and filled.get(name) == token and before_held[name][0] == url:
                del entry["token"]  # the keyring holds this very session
                entry[STORAGE_FIELD], entry[FINGERPRINT_FIELD] = KEYRING, fingerprint(token)
                continue
            entry.pop(STORAGE_FIELD, None)
            entry.pop(FINGERPRINT_FIELD, None)
            if want_keyring and (before.get(name) != token or migrate):
                moves.store.append((name, url, token))
        elif _kept(entry) and not want_keyring:
            moves.bring.append((name, url, entry.get(FINGERPRINT_FIELD)))
    storing = {(name, url) for name, url, _token in moves.store}  # a set replaces the old item anyway
    for name, (url, mark) in before_held.items():
        kept = gateways.get(name)
        if (kept is None or not _kept(kept) or kept.get("url") != url) and (name, url) not in storing:
            moves.drop.append((name, url, mark))
    return moves


@dataclass
class Outcome:
    """What the keyring did with ``Moves`` (blocking calls, after the lock was released)."""

    stored: list[tuple[str, str, str]] = field(default_factory=list)
    brought: Known = field(default_factory=dict)


def carry_out(moves: Moves, keyring: Keyring, warnings: list[str]) -> Outcome:
    """Blocking, never under the config lock: put new sessions in, fetch those going back to the file."""
    outcome = Outcome()
    for name, url, token in moves.store:
        try:
            keyring.set(name, url, token)
        except KeyringUnavailable as exc:  # the rest stay in the 0600 file too, without waiting again
            warnings.append(f"Warning: {exc}; the session stays in config.json (mode 0600).")
            break
        outcome.stored.append((name, url, token))
    outcome.brought = fetch([(name, url) for name, url, _mark in moves.bring], keyring, warnings)
    return outcome


def record(raw: dict[str, Any], outcome: Outcome) -> None:
    """Under the lock again: entries whose session reached the keyring keep a marker, fetched ones the token."""
    gateways = _gateways(raw)
    for name, url, token in outcome.stored:
        entry = gateways.get(name)
        if entry is not None and entry.get("url") == url and entry.get("token") == token:
            del entry["token"]
            entry[STORAGE_FIELD], entry[FINGERPRINT_FIELD] = KEYRING, fingerprint(token)
    for (name, url), token in outcome.brought.items():
        entry = gateways.get(name)
        if entry is not None and _kept(entry) and entry["url"] == url and not _stale(entry, token):
            entry["token"] = token
            entry.pop(STORAGE_FIELD, None)
            entry.pop(FINGERPRINT_FIELD, None)


def forget(drop: list[tuple[str, str, str | None]], keyring: Keyring, warnings: list[str]) -> None:
    """Blocking, after the write: delete stale keyring items, unless another process stored a new session there."""
    for name, url, mark in drop:
        try:
            current = keyring.get(name, url)
            if current is not None and mark is not None and fingerprint(current) != mark:
                continue  # a newer login's session: not ours to delete
            if current is not None:
                keyring.delete(name, url)
        except KeyringUnavailable as exc:
            warnings.append(f"Warning: {exc}; remove the item {account(name, url)!r} of {SERVICE!r} by hand.")
            break
