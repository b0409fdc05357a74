"""The config file: the only code that reads or writes ``config.json``.

``config.json`` is shared by every ``rack-gateway`` process on the machine (and by the Go CLI), so
every change is a read-modify-write under an exclusive lock (``filelock``, bounded wait, the holder
named on timeout), written to a temp file in the same directory, fsynced, then ``os.replace``d: a
reader sees the previous or the next version, never half of one.  The file is 0600 and its
directory 0700.  Fields this CLI does not know are kept.  A corrupt file is an error naming the file
and is never overwritten.  File I/O goes through ``rgw.aio`` (aiofiles on asyncio); the lock is taken with
non-blocking tries so that a wait can be cancelled.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import anyio

from rgw import aio
from rgw.errors import ConfigCorrupt, ConfigError, ConfigLockTimeout
from rgw.models import RackConfig

T = TypeVar("T")

CONFIG_FILE = "config.json"
#: A rack entry's note that the gateway rejected its session (the Go CLI ignores unknown fields).
REJECTED_FIELD = "session_rejected"
DEFAULT_LOCK_TIMEOUT = 30.0
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
        gateways = self.raw.get("gateways")
        entry = gateways.get(name) if isinstance(gateways, dict) else None
        if not isinstance(entry, dict):
            return None
        return rack_from_dict(name, entry)

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
        for key in ("token", "email", "expires_at", "session_id", "channel", "mfa_verified", REJECTED_FIELD):
            entry.pop(key, None)
        return True


def rack_from_dict(name: str, entry: Mapping[str, Any]) -> RackConfig:
    def text(key: str) -> str | None:
        value = entry.get(key)
        return value if isinstance(value, str) and value else None

    session_id = entry.get("session_id")
    mfa = entry.get("mfa_verified")
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
        extra={k: v for k, v in entry.items() if k not in known},
    )


class ConfigStore:
    """Reads and atomically rewrites ``<directory>/config.json`` under an exclusive lock."""

    def __init__(self, directory: Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.directory = directory
        self.path = directory / CONFIG_FILE
        self.lock_path = directory / (CONFIG_FILE + ".lock")
        self.owner_path = directory / (CONFIG_FILE + ".lock.owner")
        self.lock_timeout = lock_timeout
        self._local_lock: anyio.Lock | None = None
        self._directory_ready = False

    async def read(self) -> ConfigData:
        """A snapshot of the file; an absent file is an empty config (nothing is created)."""
        try:
            content = await aio.read_bytes(self.path)
        except FileNotFoundError:
            return ConfigData()
        except OSError as exc:
            raise ConfigError(
                f"cannot read config file {self.path}: {exc.strerror or exc}",
                hint="Check the file's permissions.",
            ) from exc
        return self._parse(content)

    def _parse(self, content: bytes) -> ConfigData:
        if not content.strip():
            return ConfigData()
        try:
            raw = json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigCorrupt(
                f"config file {self.path} is not valid JSON ({exc})",
                hint="Fix or move the file aside; rack-gateway will not overwrite it.",
            ) from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("gateways", {}), dict):
            raise ConfigCorrupt(
                f"config file {self.path} does not hold a rack-gateway config",
                hint="Fix or move the file aside; rack-gateway will not overwrite it.",
            )
        return ConfigData(raw=raw)

    async def update(self, change: Callable[[ConfigData], T]) -> T:
        """Apply ``change`` to the latest file content under the lock and write it back atomically.

        ``change`` mutates the ``ConfigData`` it is given and returns any value; nothing is written
        when it raises or changes nothing.  Under the lock the work takes two trips to a worker
        thread (mark the owner and read; write, fsync and rename), so many parallel logins in one
        process do not queue on the thread pool once per system call.
        """
        async with self.locked():
            try:
                content = await aio.call(_mark_owner_and_read, self.owner_path, _owner_record(), self.path)
            except OSError as exc:
                raise ConfigError(
                    f"cannot read config file {self.path}: {exc.strerror or exc}",
                    hint="Check the file's permissions.",
                ) from exc
            data = self._parse(content) if content is not None else ConfigData()
            before = json.dumps(data.raw, sort_keys=True)
            result = change(data)
            if json.dumps(data.raw, sort_keys=True) != before:
                await self._write(data)
            return result

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        # Tasks of this process queue on an anyio lock first, so only one of them at a time polls
        # the file lock (parallel logins in one command would otherwise back off against each other).
        if self._local_lock is None:
            self._local_lock = anyio.Lock()
        async with self._local_lock, self._file_locked():
            yield

    @contextlib.asynccontextmanager
    async def _file_locked(self) -> AsyncIterator[None]:
        if not self._directory_ready:
            await self.ensure_directory()
            self._directory_ready = True
        import filelock

        lock = filelock.FileLock(str(self.lock_path), mode=0o600, thread_local=False)
        # Non-blocking tries (flock LOCK_NB never blocks the loop) so that Ctrl-C and cancellation
        # interrupt the wait at once; the wait is bounded by lock_timeout.
        give_up = anyio.current_time() + self.lock_timeout
        delay = 0.002
        while True:
            try:
                lock.acquire(blocking=False)
                break
            except filelock.Timeout:
                if anyio.current_time() >= give_up:
                    holder = await self._lock_holder()
                    raise ConfigLockTimeout(
                        f"config file {self.path} is locked by {holder} (waited {self.lock_timeout:g} s)",
                        hint="Wait for that rack-gateway process to finish, or stop it.",
                    ) from None
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            lock.release()  # an flock release: never blocks, nothing to shield

    async def ensure_directory(self) -> None:
        """Create the config directory (0700) if it does not exist; an existing one is left as it is."""
        try:
            await aio.call(os.makedirs, self.directory, 0o700, True)
        except OSError as exc:
            raise ConfigError(f"cannot create config directory {self.directory}: {exc.strerror or exc}") from exc

    async def _lock_holder(self) -> str:
        try:
            owner = json.loads(await aio.read_bytes(self.owner_path))
            return f"process {int(owner['pid'])} ({owner.get('command') or 'rack-gateway'})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    async def _write(self, data: ConfigData) -> None:
        content = (json.dumps(data.raw, indent=2) + "\n").encode()
        try:
            await aio.call(_write_atomically, self.path, content)
        except OSError as exc:
            raise ConfigError(f"cannot write config file {self.path}: {exc.strerror or exc}") from exc


def _owner_record() -> bytes:
    import sys

    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:3]))
    return json.dumps({"pid": os.getpid(), "command": command}).encode()


def _mark_owner_and_read(owner_path: Path, owner: bytes, path: Path) -> bytes | None:
    """Runs in a worker thread right after the lock is taken: say who holds it, read the file.

    The owner file is left behind on release: only a process that cannot get the lock reads it, and
    by then the holder has written its own record.
    """
    with contextlib.suppress(OSError):
        fd = os.open(owner_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, owner)
        finally:
            os.close(fd)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, content: bytes) -> None:
    """Runs in a worker thread: temp file (0600) in the same directory, fsync, rename, fsync dir."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
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
