"""ConfigStore: schema kept, unknown fields preserved, atomic 0600 writes, corrupt files untouched."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from rgw.config import ConfigData, ConfigStore, default_config_dir
from rgw.errors import ConfigCorrupt, ConfigLockTimeout
from rgw.models import RackConfig

pytestmark = pytest.mark.anyio


def go_cli_config() -> dict[str, object]:
    return {
        "current": "production",
        "future_top_level": {"kept": True},
        "gateways": {
            "production": {
                "url": "https://gateway.example.com",
                "token": "rgw_sess_abc",
                "email": "developer@company.com",
                "expires_at": "2024-02-15T10:30:00Z",
                "session_id": 1024,
                "channel": "cli",
                "device_id": "8f4c4b8c-0000-4000-8000-000000000000",
                "device_name": "dev-mbp",
                "mfa_verified": True,
                "go_only_field": [1, 2, 3],
            }
        },
    }


async def test_reads_the_go_cli_schema(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(go_cli_config()))
    data = await ConfigStore(tmp_path).read()
    rack = data.rack("production")
    assert data.current == "production"
    assert rack == RackConfig(
        name="production",
        url="https://gateway.example.com",
        token="rgw_sess_abc",
        email="developer@company.com",
        expires_at="2024-02-15T10:30:00Z",
        session_id=1024,
        channel="cli",
        device_id="8f4c4b8c-0000-4000-8000-000000000000",
        device_name="dev-mbp",
        mfa_verified=True,
        extra={"go_only_field": [1, 2, 3]},
    )


async def test_update_keeps_unknown_fields_and_sets_modes(tmp_path: Path) -> None:
    directory = tmp_path / "cfg"
    directory.mkdir(mode=0o700)
    (directory / "config.json").write_text(json.dumps(go_cli_config()))
    store = ConfigStore(directory)

    def change(data: ConfigData) -> None:
        data.put_rack(RackConfig(name="staging", url="https://staging.example.com", token="t2", email="a@b.c"))
        data.clear_session("production")

    await store.update(change)
    raw = json.loads((directory / "config.json").read_text())
    assert raw["future_top_level"] == {"kept": True}
    assert raw["gateways"]["production"]["go_only_field"] == [1, 2, 3]
    assert raw["gateways"]["production"]["url"] == "https://gateway.example.com"
    assert "token" not in raw["gateways"]["production"]
    assert raw["gateways"]["staging"]["token"] == "t2"
    assert "machine_id" not in raw  # only a login creates it
    assert stat.S_IMODE((directory / "config.json").stat().st_mode) == 0o600
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


async def test_new_directory_is_0700_and_the_file_0600(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "new" / "rack-gateway")
    await store.update(lambda data: data.raw.__setitem__("machine_id", str(uuid.uuid4())))
    uuid.UUID((await store.read()).machine_id or "")
    assert stat.S_IMODE((tmp_path / "new" / "rack-gateway").stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"gateways": []}', b"\xff\xfe"])
async def test_corrupt_file_is_an_error_naming_the_file_and_is_left_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    store = ConfigStore(tmp_path)
    with pytest.raises(ConfigCorrupt) as info:
        await store.read()
    assert str(path) in info.value.message
    with pytest.raises(ConfigCorrupt):
        await store.update(lambda data: data.put_rack(RackConfig(name="x", url="https://x")))
    assert path.read_bytes() == content


async def test_failed_change_writes_nothing(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    await store.update(lambda data: data.put_rack(RackConfig(name="a", url="https://a")))
    before = store.path.read_bytes()

    def boom(data: ConfigData) -> None:
        data.put_rack(RackConfig(name="b", url="https://b"))
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await store.update(boom)
    assert store.path.read_bytes() == before


async def test_lock_wait_is_bounded_and_names_the_holder(tmp_path: Path) -> None:
    from rgw.locks import FileLock

    store = ConfigStore(tmp_path, lock_timeout=0.2)
    await store.update(lambda data: data.put_rack(RackConfig(name="a", url="https://a")))
    held = FileLock(store.lock_path)
    assert held.try_acquire()
    held.write_holder(json.dumps({"pid": os.getpid(), "command": "rack-gateway"}).encode())
    try:
        with pytest.raises(ConfigLockTimeout) as info:
            await store.update(lambda data: None)
    finally:
        held.release()
    assert f"process {os.getpid()} (rack-gateway)" in info.value.message
    assert "no longer running" not in info.value.message


def test_default_config_dir_precedence(tmp_path: Path) -> None:
    assert default_config_dir({"GATEWAY_CLI_CONFIG_DIR": str(tmp_path)}) == tmp_path
    assert default_config_dir({"XDG_CONFIG_HOME": "/x"}) == Path("/x/rack-gateway")
    assert default_config_dir({}) == Path(os.path.expanduser("~/.config/rack-gateway"))


def test_a_rejection_is_remembered_only_for_the_session_that_was_rejected() -> None:
    data = ConfigData()
    data.put_rack(RackConfig(name="a", url="https://a", token="tok-2"))
    assert data.mark_rejected("a", "tok-1", "session expired", "t") is False  # another process logged in since
    assert "session_rejected" not in data.raw["gateways"]["a"]
    assert data.mark_rejected("nope", "tok-2", "session expired", "t") is False
    assert data.mark_rejected("a", "tok-2", "session expired", "2026-01-01T00:00:00Z") is True
    assert data.raw["gateways"]["a"]["session_rejected"] == {"reason": "session expired", "at": "2026-01-01T00:00:00Z"}


def test_clear_session_forgets_the_session_keeps_the_rack_and_says_whether_there_was_one() -> None:
    data = ConfigData(raw={"gateways": {"odd": "text"}})
    data.put_rack(RackConfig(name="a", url="https://a", token="t", email="e@x", session_id=3, extra={"kept": 1}))
    data.raw["gateways"]["a"].update(session_rejected={"reason": "r"}, token_storage="keyring", token_sha256="f")
    assert data.clear_session("a") is True
    assert data.raw["gateways"]["a"] == {"url": "https://a", "kept": 1}
    assert data.clear_session("nope") is False
    assert data.clear_session("odd") is False
    assert data.raw["gateways"]["odd"] == "text"


async def test_a_config_others_can_read_is_warned_about_and_made_0600_by_the_next_write(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    heard: list[str] = []
    store = ConfigStore(tmp_path, on_warning=heard.append)
    await store.update(lambda data: data.put_rack(RackConfig(name="a", url="https://a")))
    store.path.chmod(0o644)
    await store.update(lambda data: data.put_rack(RackConfig(name="b", url="https://b")))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert heard == [
        f"Warning: {store.path} can be read by other users (mode 644); it holds your session tokens. "
        f"Please run: chmod 600 {store.path}"
    ]


async def test_the_lock_is_retried_after_2_ms_doubling_up_to_50_ms_until_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rgw import aio
    from rgw.locks import FileLock

    clock = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    store = ConfigStore(tmp_path, lock_timeout=0.2)
    await store.update(lambda data: None)
    monkeypatch.setattr(aio, "now", lambda: clock[0])
    monkeypatch.setattr(aio, "sleep", sleep)
    held = FileLock(store.lock_path)
    assert held.try_acquire()
    try:
        with pytest.raises(ConfigLockTimeout) as info:
            await store.update(lambda data: None)
    finally:
        held.release()
    assert waits == pytest.approx([0.002, 0.004, 0.008, 0.016, 0.032, 0.05, 0.05, 0.05])
    assert "(waited 0.2 s)" in info.value.message
    assert info.value.hint == "Wait for that rack-gateway process to finish, or stop it."
