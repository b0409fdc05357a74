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
