"""The config file: the only code that reads or writes ``config.json``.

``config.json`` is shared by every ``rack-gateway`` process on the machine (and by the Go CLI), so
every change is a read-modify-write under an exclusive lock (``rgw.locks``: an ``flock`` opened
``O_NOFOLLOW``, bounded wait, the holder named on timeout), written to a temp file in the same
directory, fsynced, then ``os.replace``d: a reader sees the previous or the next version, never half
of one.  The file is 0600 and its directory 0700; a directory or file that another user owns or can
write is refused (as ssh refuses such a ``~/.ssh``), a file others can read is warned about.  A
``config.json`` that is a symlink (dotfile managers) is written through to its target, which stays
a symlink's target.  Fields this CLI does not know are kept.  A corrupt file is an error naming the
file and is never overwritten.  File I/O runs in worker threads (``rgw.aio.call``, which a cancelled
caller waits for: a write started under the lock ends before the lock is released); the lock is
taken with non-blocking tries so that a wait can be cancelled.  Tokens kept in the OS keyring
(``rgw.secrets``) are fetched only for the racks a command uses, and never with the lock held.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from rgw import aio, secrets, trace
from rgw.errors import ConfigCorrupt, ConfigError, ConfigLockTimeout
from rgw.locks import FileLock, describe_holder, file_error, holder_record, open_private, read_holder
from rgw.models import REJECTED_FIELD, RackConfig
from rgw.secrets import Keyring

T = TypeVar("T")

CONFIG_FILE = "config.json"
DEFAULT_LOCK_TIMEOUT = 30.0
#: What a logout forgets of a rack's entry (the rack, its URL and unknown fields stay).
_SESSION_FIELDS = ("token", "email", "expires_at", "session_id", "channel", "mfa_verified")
_RACK_FIELDS = tuple(f.name for f in fields(RackConfig) if f.name not in ("name", "extra"))


def default_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``GATEWAY_CLI_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/rack-gateway``, else ``~/.config/rack-gateway``."""
    env = os.environ if environ is None else environ
    if env.get("GATEWAY_CLI_CONFIG_DIR"):
        return Path(env["GATEWAY_CLI_CONFIG_DIR"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "rack-gateway"


@dataclass
class ConfigData:
    """The whole file as a mutable snapshot.  ``raw`` holds every field, known or not."""

    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def current(self) -> str | None:
        value = self.raw.get("current")
        return value if isinstance(value, str) and value else None

    @current.setter
    def current(self, name: str | None) -> None:
        if name is None:
            self.raw.pop("current", None)
        else:
            self.raw["current"] = name

    @property
    def machine_id(self) -> str | None:
        value = self.raw.get("machine_id")
        return value if isinstance(value, str) and value else None

    def _gateways(self) -> dict[str, Any]:
        gateways = self.raw.get("gateways")
        if not isinstance(gateways, dict):
            gateways = {}
            self.raw["gateways"] = gateways
        return gateways

    def rack_names(self) -> list[str]:
        gateways = self.raw.get("gateways")
        return sorted(gateways) if isinstance(gateways, dict) else []

    def rack(self, name: str) -> RackConfig | None:
        """The rack ``name`` as stored (None: no such rack).  An entry a hand edit broke is still a
        rack (``racks`` lists it, ``switch`` selects it), with ``rack_problem`` saying why it cannot be used."""
        gateways = self.raw.get("gateways")
        if not isinstance(gateways, dict) or name not in gateways:
            return None
        entry = gateways[name]
        return rack_from_dict(name, entry if isinstance(entry, dict) else {})

    def rack_problem(self, name: str) -> str | None:
        """Why the stored rack ``name`` cannot be used (its entry is not an object, it has no URL, its
        URL is not text or not a gateway URL), or None.  The one reading of an entry for every command."""
        gateways = self.raw.get("gateways")
        entry = gateways.get(name) if isinstance(gateways, dict) else None
        if entry is None:
            return None
        if not isinstance(entry, dict):
            return f"its entry is {_json_kind(entry)}, not an object"
        url = entry.get("url")
        if url is None or url == "":
            return "it has no URL"
        if not isinstance(url, str):
            return f"its URL is {_json_kind(url)}, not text"
        from rgw.errors import UsageError
        from rgw.urls import normalize_url

        try:
            normalize_url(url)
        except UsageError as exc:
            return exc.message
        return None

    def racks(self) -> list[RackConfig]:
        return [rack for name in self.rack_names() if (rack := self.rack(name)) is not None]

    def put_rack(self, rack: RackConfig) -> None:
        """Store ``rack``, keeping unknown fields of the existing entry and of ``rack.extra``.

        A new session clears what was remembered about the old one's rejection.
        """
        gateways = self._gateways()
        existing = gateways.get(rack.name)
        entry: dict[str, Any] = dict(existing) if isinstance(existing, dict) else {}
        if entry.get("token") != rack.token:
            entry.pop(REJECTED_FIELD, None)
        entry.update(rack.extra)
        for name in _RACK_FIELDS:
            value = getattr(rack, name)
            if value is None:
                entry.pop(name, None)
            else:
                entry[name] = value
        gateways[rack.name] = entry

    def remove_rack(self, name: str) -> bool:
        gateways = self._gateways()
        removed = gateways.pop(name, None) is not None
        if removed and self.current == name:
            self.current = None
        return removed

    def mark_rejected(self, name: str, token: str, reason: str, at: str) -> bool:
        """Remember that the gateway rejected this rack's session (shown by ``racks`` until a login)."""
        entry = self._gateways().get(name)
        if not isinstance(entry, dict) or entry.get("token") != token:
            return False  # another process has logged in since: its session is not the rejected one
        entry[REJECTED_FIELD] = {"reason": reason, "at": at}
        return True

    def clear_session(self, name: str) -> bool:
        """Forget the session of ``name`` but keep the rack and its URL (and unknown fields)."""
        entry = self._gateways().get(name)
        if not isinstance(entry, dict):
            return False
        for key in (*_SESSION_FIELDS, REJECTED_FIELD, secrets.STORAGE_FIELD, secrets.FINGERPRINT_FIELD):
            entry.pop(key, None)
        return True


def _json_kind(value: object) -> str:
    """What a JSON value is, for a message: ``a number``, ``a list`` ..."""
    if isinstance(value, bool):
        return "true" if value else "false"
    kinds = ((int, "a number"), (float, "a number"), (list, "a list"), (str, "text"), (dict, "an object"))
    return next((kind for cls, kind in kinds if isinstance(value, cls)), "null")


def rack_from_dict(name: str, entry: Mapping[str, Any]) -> RackConfig:
    def text(key: str) -> str | None:
        value = entry.get(key)
        return value if isinstance(value, str) and value else None

    session_id = entry.get("session_id")
    mfa = entry.get("mfa_verified")
    insecure = entry.get("insecure_http")
    known = {*_RACK_FIELDS}
    return RackConfig(
        name=name,
        url=text("url") or "",
        token=text("token"),
        email=text("email"),
        expires_at=text("expires_at"),
        session_id=session_id if isinstance(session_id, int) and not isinstance(session_id, bool) else None,
        channel=text("channel"),
        device_id=text("device_id"),
        device_name=text("device_name"),
        mfa_verified=mfa if isinstance(mfa, bool) else None,
        insecure_http=True if insecure is True else None,
        extra={k: v for k, v in entry.items() if k not in known},
    )


class ConfigStore:
    """Reads and atomically rewrites ``<directory>/config.json`` under an exclusive lock.

    ``on_warning`` hears about things worth telling the user that do not stop anything (a
    ``config.json`` other users can read).
    """

    def __init__(
        self,
        directory: Path,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        on_warning: Callable[[str], None] | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.directory = directory
        self.path = directory / CONFIG_FILE
        self.lock_path = directory / (CONFIG_FILE + ".lock")
        self.lock_timeout = lock_timeout
        self.on_warning = on_warning
        #: Where tokens kept in the OS keyring are fetched from and put (``rgw.secrets``).
        self.keyring = keyring
        #: Tokens fetched from (or put into) the keyring this run, by (rack, url).
        self._known: secrets.Known = {}
        self._local_lock: Any = None  # an anyio.Lock, made on a loop's first use
        self._warned = False
        self._told: set[str] = set()

    def _warn(self, warnings: list[str]) -> None:
        if warnings and not self._warned and self.on_warning is not None:
            self._warned = True
            for text in warnings:
                self.on_warning(text)

    async def read(self, *, tokens: Iterable[str] | None = None) -> ConfigData:
        """A snapshot of the file; an absent file is an empty config (nothing is created).

        With sessions kept in the OS keyring, the tokens of the racks in ``tokens`` (None: every
        rack; ``()``: none, e.g. for ``racks``) are fetched, each at most once per run.
        """
        try:
            target, warnings = await aio.call(_check, self.directory, self.path)
            content: bytes | None = await aio.read_bytes(target, opener=_open_for_reading)
        except FileNotFoundError:
            content = None
        except OSError as exc:
            raise file_error(self.path, exc, "read config file", holds_data=True) from exc
        self._warn(warnings)
        data = ConfigData() if content is None else _parse(self.path, content)
        await self.fetch_tokens(data, tokens)
        return data

    async def fetch_tokens(self, data: ConfigData, names: Iterable[str | None] | None) -> None:
        """Fill in the keyring-held tokens of the racks ``names`` (None: all); never under the lock."""
        if not secrets.uses_keyring(data.raw):
            return
        wanted = secrets.missing(data.raw, None if names is None else [n for n in names if n], self._known)
        if wanted:
            notes: list[str] = []
            self._known.update(await aio.call(secrets.fetch, wanted, self._keyring(), notes))
            self._tell(notes)
        secrets.fill(data.raw, self._known)

    def _keyring(self) -> Keyring:
        if self.keyring is None:
            self.keyring = secrets.Keyring()
        return self.keyring

    def _tell(self, notes: list[str]) -> None:
        for text in notes:  # said once per run: a keyring that failed is not news for every rack
            if text not in self._told and self.on_warning is not None:
                self._told.add(text)
                self.on_warning(text)

    async def update(self, change: Callable[[ConfigData], T]) -> T:
        """Apply ``change`` to the latest file content under the lock and write it back atomically.

        ``change`` mutates the ``ConfigData`` it is given and returns any value; nothing is written
        when it raises or changes nothing.  Under the lock the whole read-modify-write is one trip to
        a worker thread (``change`` runs there too: it only touches its ``ConfigData``), so many
        parallel logins in one process do not queue on the thread pool once per system call.

        With the OS keyring, ``change`` sees the tokens this run has fetched as if they were in the
        file; the keyring itself is called only after the lock is released (``_settle``).
        """
        result, moves = await self._locked_update(change, self._known)
        if moves:
            await self._settle(moves)
        return result

    async def _locked_update(self, change: Callable[[ConfigData], T], known: secrets.Known) -> tuple[T, secrets.Moves]:
        async with self.locked() as lock:
            try:
                result, moves, warnings = await aio.call(_update_locked, self.directory, self.path, lock, change, known)
            except OSError as exc:
                raise file_error(self.path, exc, "write config file", holds_data=True) from exc
        self._warn(warnings)
        return result, moves

    async def _settle(self, moves: secrets.Moves) -> None:
        """After an update: new sessions into the keyring, then mark them so in the file (or bring
        sessions back into it), then delete keyring items no entry points at any more."""
        notes: list[str] = []
        outcome = await aio.call(secrets.carry_out, moves, self._keyring(), notes)
        self._known.update({(name, url): token for name, url, token in outcome.stored})
        self._known.update(outcome.brought)
        if outcome.stored or outcome.brought:
            await self._locked_update(lambda data: secrets.record(data.raw, outcome), {})
        brought = [(name, url, secrets.fingerprint(token)) for (name, url), token in outcome.brought.items()]
        if moves.drop or brought:
            await aio.call(secrets.forget, [*moves.drop, *brought], self._keyring(), notes)
        self._tell(notes)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[FileLock]:
        if not aio.in_event_loop():  # a local command: one task, nothing to queue behind
            lock = await self._acquire()
            try:
                yield lock
            finally:
                lock.release()
            return
        # Tasks of this process queue on an anyio lock first, so only one of them at a time polls
        # the file lock (parallel logins in one command would otherwise back off against each other).
        if self._local_lock is None:
            import anyio

            self._local_lock = anyio.Lock()
        async with self._local_lock:
            lock = await self._acquire()
            try:
                yield lock
            finally:
                # Nothing to shield: an update's worker thread has finished before we get here, even
                # when cancelled (rgw.aio.call waits for it), so the lock is released after its write.
                lock.release()

    async def _acquire(self) -> FileLock:
        lock = FileLock(self.lock_path)
        # Non-blocking tries (flock LOCK_NB never blocks the loop) so that Ctrl-C and cancellation
        # interrupt the wait at once; the wait is bounded by lock_timeout.
        started = aio.now()
        give_up = started + self.lock_timeout
        delay = 0.002
        waited = False
        while True:
            try:
                if lock.try_acquire():
                    if waited:
                        trace.debug("lock: got %s after %.2f s", self.lock_path.name, aio.now() - started)
                    return lock
            except FileNotFoundError:
                await self.ensure_directory()
                continue
            except OSError as exc:
                raise file_error(self.lock_path, exc) from exc
            if not waited and trace.enabled():
                holder = describe_holder(await aio.call(read_holder, self.lock_path))
                trace.debug(
                    "lock: %s is held by %s; waiting up to %g s", self.lock_path.name, holder, self.lock_timeout
                )
            waited = True
            if aio.now() >= give_up:
                holder = describe_holder(await aio.call(read_holder, self.lock_path))
                raise ConfigLockTimeout(
                    f"config file {self.path} is locked by {holder} (waited {self.lock_timeout:g} s)",
                    hint="Wait for that rack-gateway process to finish, or stop it.",
                )
            await aio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def check_lock_file(self) -> None:
        """Raise now the ``ConfigError`` a write would meet at the lock file (a hard link or a directory
        in its place, a read-only directory): a login says so before the user signs in, not after."""

        def probe() -> None:
            os.close(open_private(self.lock_path, os.O_RDWR | os.O_CREAT))

        try:
            await aio.call(probe)
        except OSError as exc:
            raise file_error(self.lock_path, exc) from exc

    async def ensure_directory(self) -> None:
        """Create the config directory (0700) if it does not exist; an existing one is left as it is."""
        try:
            await aio.call(os.makedirs, self.directory, 0o700, True)
        except OSError as exc:
            raise file_error(self.directory, exc, "create config directory") from exc


def _parse(path: Path, content: bytes) -> ConfigData:
    if not content.strip():
        return ConfigData()
    try:
        raw = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ConfigCorrupt(
            f"config file {path} is not valid JSON ({detail[:200]})",
            hint="Fix or move the file aside; rack-gateway will not overwrite it.",
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("gateways", {}), dict):
        raise ConfigCorrupt(
            f"config file {path} does not hold a rack-gateway config",
            hint="Fix or move the file aside; rack-gateway will not overwrite it.",
        )
    return ConfigData(raw=raw)


def _unsafe(path: Path, info: os.stat_result, what: str) -> None:
    """Refuse a directory or file another user owns or can write (as ssh does with ~/.ssh)."""
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"{what} {path} belongs to another user (uid {info.st_uid}); rack-gateway will not use it",
            hint=f"Use your own config directory (--config DIR), or: sudo chown {os.getuid()} {path}",
        )
    if info.st_mode & 0o022:
        mode = stat.S_IMODE(info.st_mode)
        fix = "700" if stat.S_ISDIR(info.st_mode) else "600"
        raise ConfigError(
            f"{what} {path} can be written by other users (mode {mode:o}); rack-gateway will not use it",
            hint=f"Please run: chmod {fix} {path}",
        )


def _check(directory: Path, path: Path) -> tuple[Path, list[str]]:
    """Runs in a worker thread: the file to read and write (a symlink's target), and any warnings.

    The directory and the file must be ours and writable by nobody else; a file others can read
    gets a warning (the next write makes it 0600).
    """
    warnings: list[str] = []
    try:
        _unsafe(directory, os.stat(directory), "config directory")
    except FileNotFoundError:
        return path, warnings
    target = path
    if path.is_symlink():  # a dotfile manager's link: write through to its target, keep the link
        target = Path(os.path.realpath(path))
        _unsafe(target.parent, os.stat(target.parent), "config directory")
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return target, warnings
    _unsafe(target, info, "config file")
    if info.st_mode & 0o044:
        warnings.append(
            f"Warning: {path} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}); it holds your "
            f"session tokens. Please run: chmod 600 {target}"
        )
    return target, warnings


def _read_checked(directory: Path, path: Path) -> tuple[bytes | None, list[str]]:
    """Blocking: the config's content (None: no file yet) and any warnings, after every check."""
    target, warnings = _check(directory, path)
    return _read_target(target), warnings


def _open_for_reading(path: str, flags: int) -> int:
    """``open``'s opener for config.json: checked like every file in the config directory."""
    return open_private(Path(path), flags)


def _read_target(target: Path) -> bytes | None:
    """``target``'s content (None: no file yet), opened and checked like every file in the config
    directory (a FIFO, a hard link or a directory in its place is refused, never read)."""
    try:
        return aio.read_now(target, _open_for_reading)
    except FileNotFoundError:
        return None


def _update_locked(
    directory: Path, path: Path, lock: FileLock, change: Callable[[ConfigData], T], known: secrets.Known
) -> tuple[T, secrets.Moves, list[str]]:
    """Runs in a worker thread with the lock held: say who holds it, read, change, write back.

    Never calls the keyring: tokens this run fetched are filled in where the file still points at
    them, and what the keyring must do is returned (``secrets.Moves``) for after the lock.
    """
    lock.write_holder(holder_record())
    target, warnings = _check(directory, path)
    content = _read_target(target)
    data = ConfigData() if content is None else _parse(path, content)
    held = secrets.held(data.raw)
    filled = secrets.fill(data.raw, known)
    tokens = secrets.file_tokens(data.raw)
    before = json.dumps(data.raw, sort_keys=True)
    result = change(data)
    moves = secrets.Moves()
    if json.dumps(data.raw, sort_keys=True) != before:
        if held or secrets.uses_keyring(data.raw):
            moves = secrets.settle(data.raw, held, filled, tokens)
        _write_atomically(target, (json.dumps(data.raw, indent=2) + "\n").encode())
        if content is not None and warnings:
            os.chmod(target, 0o600)  # the new file is 0600 already; this says so for a reused inode
    return result, moves, warnings


def _write_atomically(path: Path, content: bytes) -> None:
    """Temp file (0600) in the same directory, fsync, rename over ``path``, fsync the directory."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        try:
            aio.write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rack_names_now(directory: Path) -> list[str]:
    """The racks in ``directory``'s config, read at once (blocking), or none when it cannot be read.

    For shell completion, which runs without an event loop and must never fail: the same checks
    as ``ConfigStore.read`` (ownership, permissions), no lock, no keyring.
    """
    path = directory / CONFIG_FILE
    try:
        content, _warnings = _read_checked(directory, path)
        return [] if content is None else _parse(path, content).rack_names()
    except (OSError, ConfigError):
        return []
