"""SQLite storage of the reference gateway.

One connection (`check_same_thread=False`) guarded by a `threading.Lock`: the gateway's synchronous
methods are called from the server's event loop and from test threads alike.  Tokens are never
stored: sessions keep HMAC(secret, token), API tokens and backup codes keep SHA-256 digests.
Rows come back as small frozen dataclasses so the rest of the gateway never sees SQL.  A user's
numeric id (the Go server's `user_id`) is the row's rowid, kept stable by upserting; columns added
since a database file was made are added on open.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  email TEXT PRIMARY KEY, name TEXT NOT NULL, roles TEXT NOT NULL, mfa_required INTEGER NOT NULL,
  created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS login_states (
  state TEXT PRIMARY KEY, code_verifier TEXT NOT NULL, loopback_uri TEXT, stage TEXT NOT NULL,
  email TEXT, error TEXT, code TEXT, created_at REAL NOT NULL, verified_at REAL,
  mfa_verified_at REAL);
CREATE TABLE IF NOT EXISTS sessions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, token_hash TEXT NOT NULL UNIQUE, email TEXT NOT NULL,
  created_at REAL NOT NULL, last_used_at REAL NOT NULL, expires_at REAL NOT NULL,
  revoked_reason TEXT, device_id TEXT, device_name TEXT, device_os TEXT, channel TEXT NOT NULL,
  mfa_verified_at REAL);
CREATE TABLE IF NOT EXISTS api_tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT, public_id TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL, permissions TEXT NOT NULL, role TEXT, user_email TEXT NOT NULL,
  created_at REAL NOT NULL, last_used_at REAL, expires_at REAL);
CREATE TABLE IF NOT EXISTS mfa_methods (
  id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL, type TEXT NOT NULL, label TEXT NOT NULL,
  secret TEXT, credential_id TEXT, public_key TEXT, sign_count INTEGER NOT NULL DEFAULT 0,
  last_counter INTEGER NOT NULL DEFAULT -1, created_at REAL NOT NULL, last_used_at REAL);
CREATE TABLE IF NOT EXISTS backup_codes (
  id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL, code_hash TEXT NOT NULL, used_at REAL);
CREATE TABLE IF NOT EXISTS mfa_attempts (
  email TEXT NOT NULL, kind TEXT NOT NULL, success INTEGER NOT NULL, reason TEXT, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS used_totp_steps (
  email TEXT NOT NULL, step INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (email, step));
"""

# Columns added after the first release, for database files made before them.
ADDED_COLUMNS = (
    ("users", "locked_at", "REAL"),
    ("users", "locked_reason", "TEXT"),
    ("api_tokens", "created_by", "TEXT"),
    ("login_states", "device_name", "TEXT"),
)


@dataclass(frozen=True)
class User:
    email: str
    name: str
    roles: list[str]
    mfa_required: bool
    id: int = 0  # assigned by the store
    locked_at: float | None = None  # set by the store (MFA lock-out), cleared by an unlock


@dataclass(frozen=True)
class LoginState:
    state: str
    code_verifier: str
    loopback_uri: str | None
    stage: str  # browser | mfa | verified | failed
    email: str | None
    error: str | None
    code: str | None
    created_at: float
    verified_at: float | None
    mfa_verified_at: float | None
    #: The CLI's host name as it sent it with `/start` [ext]: shown on the browser pages.
    device_name: str | None = None


_STATE_COLUMNS = (
    "state",
    "code_verifier",
    "loopback_uri",
    "stage",
    "email",
    "error",
    "code",
    "created_at",
    "verified_at",
    "mfa_verified_at",
    "device_name",
)
# Built from the constant column names above, never from input.
_PUT_STATE = (
    f"INSERT OR REPLACE INTO login_states ({', '.join(_STATE_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join('?' for _ in _STATE_COLUMNS)})"
)
_GET_STATE = f"SELECT {', '.join(_STATE_COLUMNS)} FROM login_states WHERE state = ?"  # noqa: S608


@dataclass(frozen=True)
class SessionRow:
    id: int
    token_hash: str
    email: str
    created_at: float
    last_used_at: float
    expires_at: float
    revoked_reason: str | None
    device_id: str | None
    device_name: str | None
    channel: str
    mfa_verified_at: float | None


@dataclass(frozen=True)
class ApiTokenRow:
    id: int
    public_id: str
    token_hash: str
    name: str
    permissions: list[str]
    role: str | None
    user_email: str
    created_at: float
    last_used_at: float | None
    expires_at: float | None
    created_by: str | None = None  # email of the user who created it


@dataclass(frozen=True)
class MfaMethod:
    id: int
    email: str
    type: str  # totp | webauthn
    label: str
    secret: str | None
    credential_id: str | None
    public_key: str | None
    sign_count: int
    last_counter: int
    created_at: float
    last_used_at: float | None


class Store:
    """Thread-safe SQLite access; every method is one short transaction."""

    def __init__(self, db_path: str = ":memory:") -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        # A gateway nobody closed (a test's, a script's) closes its database when it is collected:
        # Python 3.13 warns of every sqlite3 connection left open (ResourceWarning) at that moment.
        weakref.finalize(self, self._db.close)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.executescript(SCHEMA)
            for table, column, kind in ADDED_COLUMNS:
                present = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    def row(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    # users
    def put_user(self, user: User, now: float) -> None:
        """Add or update a user (name, roles, MFA requirement); its id and lock are kept."""
        self.execute(
            "INSERT INTO users (email, name, roles, mfa_required, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (email) DO UPDATE SET name = excluded.name, roles = excluded.roles,"
            " mfa_required = excluded.mfa_required",
            (user.email, user.name, ",".join(user.roles), int(user.mfa_required), now),
        )

    def user(self, email: str) -> User | None:
        r = self.row("SELECT rowid AS id, * FROM users WHERE email = ?", (email.lower(),))
        if r is None:
            return None
        roles = [x for x in str(r["roles"]).split(",") if x]
        return User(r["email"], r["name"], roles, bool(r["mfa_required"]), int(r["id"]), r["locked_at"])

    def user_id(self, email: str) -> int | None:
        r = self.row("SELECT rowid FROM users WHERE email = ?", (email.lower(),))
        return None if r is None else int(r[0])

    def set_locked(self, email: str, locked_at: float | None, reason: str | None = None) -> None:
        """Lock a user (kept if already locked) or, with None, unlock it."""
        if locked_at is None:
            self.execute("UPDATE users SET locked_at = NULL, locked_reason = NULL WHERE email = ?", (email,))
        else:
            self.execute(
                "UPDATE users SET locked_at = ?, locked_reason = ? WHERE email = ? AND locked_at IS NULL",
                (locked_at, reason, email),
            )

    def users(self) -> list[User]:
        emails = [r["email"] for r in self.rows("SELECT email FROM users ORDER BY created_at, email")]
        return [u for u in (self.user(e) for e in emails) if u is not None]

    # login states
    def put_state(self, s: LoginState) -> None:
        self.execute(_PUT_STATE, tuple(getattr(s, column) for column in _STATE_COLUMNS))

    def state(self, state: str) -> LoginState | None:
        r = self.row(_GET_STATE, (state,))
        return None if r is None else LoginState(*tuple(r))

    def delete_state(self, state: str) -> None:
        self.execute("DELETE FROM login_states WHERE state = ?", (state,))

    # sessions
    def add_session(
        self,
        token_hash: str,
        email: str,
        now: float,
        expires_at: float,
        *,
        device_id: str | None,
        device_name: str | None,
        device_os: str | None,
        mfa_verified_at: float | None,
    ) -> int:
        cur = self.execute(
            "INSERT INTO sessions (token_hash, email, created_at, last_used_at, expires_at, device_id,"
            " device_name, device_os, channel, mfa_verified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'cli', ?)",
            (token_hash, email, now, now, expires_at, device_id, device_name, device_os, mfa_verified_at),
        )
        return int(cur.lastrowid or 0)

    def session_by_hash(self, token_hash: str) -> SessionRow | None:
        r = self.row(
            "SELECT id, token_hash, email, created_at, last_used_at, expires_at, revoked_reason, device_id,"
            " device_name, channel, mfa_verified_at FROM sessions WHERE token_hash = ?",
            (token_hash,),
        )
        return None if r is None else SessionRow(*tuple(r))

    # api tokens
    def add_api_token(
        self,
        public_id: str,
        token_hash: str,
        name: str,
        permissions: list[str],
        role: str | None,
        user_email: str,
        now: float,
        created_by: str | None = None,
    ) -> int:
        cur = self.execute(
            "INSERT INTO api_tokens (public_id, token_hash, name, permissions, role, user_email, created_at,"
            " created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (public_id, token_hash, name, json.dumps(permissions), role, user_email, now, created_by),
        )
        return int(cur.lastrowid or 0)

    def api_tokens(self, *, public_id: str | None = None, token_hash: str | None = None) -> list[ApiTokenRow]:
        """All API tokens, or the one with `public_id` or `token_hash`."""
        columns = (
            "SELECT id, public_id, token_hash, name, permissions, role, user_email, created_at,"
            " last_used_at, expires_at, created_by FROM api_tokens"
        )
        if public_id is not None:
            found = self.rows(columns + " WHERE public_id = ?", (public_id,))
        elif token_hash is not None:
            found = self.rows(columns + " WHERE token_hash = ?", (token_hash,))
        else:
            found = self.rows(columns + " ORDER BY id")
        return [
            ApiTokenRow(r[0], r[1], r[2], r[3], list(json.loads(r[4])), r[5], r[6], r[7], r[8], r[9], r[10])
            for r in found
        ]

    # mfa
    def mfa_methods(self, email: str) -> list[MfaMethod]:
        found = self.rows("SELECT * FROM mfa_methods WHERE email = ? ORDER BY id", (email,))
        return [MfaMethod(*tuple(r)) for r in found]

    def add_mfa_method(
        self,
        email: str,
        kind: str,
        label: str,
        now: float,
        *,
        secret: str | None = None,
        credential_id: str | None = None,
        public_key: str | None = None,
        sign_count: int = 0,
    ) -> int:
        cur = self.execute(
            "INSERT INTO mfa_methods (email, type, label, secret, credential_id, public_key, sign_count,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (email, kind, label, secret, credential_id, public_key, sign_count, now),
        )
        return int(cur.lastrowid or 0)
