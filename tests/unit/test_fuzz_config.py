"""Fuzzing ``config.json``: any bytes or JSON give a valid config or a ``ConfigError``, never a traceback.

Reading never changes the directory (no file written, renamed or touched); an update of a file
that parses either writes a file that parses to the same unknown fields plus the change, or fails
with an ``RgwError`` and leaves the file byte-for-byte as it was.  What the rest of the CLI does
with a parsed config (``racks``, rack and target selection) is fuzzed too, in process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.config import ConfigData, ConfigStore
from rgw.errors import ConfigCorrupt, ConfigError, RgwError
from rgw.models import RackConfig
from rgw.targets import Selection, command_target, login_target
from tests.fuzzing import fuzz_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # file I/O in worker threads: nothing here differs between the backends


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
RACK_FIELDS = (
    "url",
    "token",
    "email",
    "expires_at",
    "session_id",
    "channel",
    "device_id",
    "device_name",
    "mfa_verified",
    "session_rejected",
)
rack_names = st.text(max_size=12) | st.sampled_from(["production", "staging", "", " ", "a\x1b[2J"])
#: Stored URLs a hand-edited (or hostile) config may hold.
hostile_urls = st.sampled_from(
    [
        "http://[::1",
        "http://[::1]:99999",
        "https://",
        "gw.example.com:port",
        "ftp://x",
        "http://a b",
        "\x00",
        "",
        "http://[v1.fe]",
        "https://gw.example.com:-1",
        "https://\u202egw.example.com",
        "http://%zz",
    ]
) | st.text(alphabet="htps:/[]%@.:1a ", max_size=20)
rack_entries = st.dictionaries(st.sampled_from(RACK_FIELDS) | st.text(max_size=8), json_values, max_size=6).flatmap(
    lambda entry: st.one_of(st.just(entry), hostile_urls.map(lambda url: {**entry, "url": url}))
)
#: Configs of the right shape with any types in its fields.
shaped_configs = st.fixed_dictionaries(
    {},
    optional={
        "current": json_values | rack_names,
        "machine_id": json_values,
        "gateways": st.dictionaries(rack_names, rack_entries | json_values, max_size=4) | json_values,
    },
).flatmap(lambda d: st.dictionaries(st.text(max_size=8), json_values, max_size=3).map(lambda extra: {**extra, **d}))
configs = shaped_configs | json_values


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for position, cut, insert in edits:
        at = position % (len(out) + 1)
        out[at : at + cut] = insert
    return bytes(out)


valid_bytes = shaped_configs.map(lambda c: json.dumps(c).encode())
mutated = st.tuples(
    valid_bytes, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3), st.binary(max_size=3)), max_size=4)
).map(lambda t: _mutate(*t))
nested = st.tuples(st.integers(1, 200_000), st.sampled_from([b"[", b'{"a":', b'{"gateways":'])).map(
    lambda t: t[1] * t[0]
)
contents = st.binary(max_size=300) | valid_bytes | mutated | nested | st.text(max_size=100).map(str.encode)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file in ``directory``: content, mode, mtime (ns)."""
    found = {}
    for path in sorted(directory.iterdir()):
        info = path.stat()
        found[path.name] = (path.read_bytes(), info.st_mode, info.st_mtime_ns)
    return found


def config_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="rgw-fuzz-")


def write_config(directory: Path, content: bytes) -> Path:
    os.chmod(directory, 0o700)
    path = directory / "config.json"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    return path


def exercise(data: ConfigData) -> None:
    """What commands do with a parsed config: every accessor, and target selection."""
    assert data.current is None or isinstance(data.current, str)
    assert data.machine_id is None or isinstance(data.machine_id, str)
    names = data.rack_names()
    assert all(isinstance(name, str) for name in names)
    for rack in data.racks():
        assert isinstance(rack, RackConfig)
        assert isinstance(rack.url, str)
        assert rack.token is None or isinstance(rack.token, str)
        _ = rack.rejected, rack.logged_in
    for selection in (Selection(), Selection(api_token="rgw_token_x"), Selection(rack=names[0] if names else "x")):
        with contextlib.suppress(RgwError):
            command_target(data, selection)
        with contextlib.suppress(RgwError):
            login_target(data, selection, None, None)


@fuzz_settings(200)
@given(content=contents)
async def test_reading_any_bytes_gives_a_config_or_a_config_error(content: bytes) -> None:
    with config_dir() as tmp:
        directory = Path(tmp)
        path = write_config(directory, content)
        before = snapshot(directory)
        error: ConfigCorrupt | None = None
        try:
            with anyio.fail_after(10):
                data = await ConfigStore(directory).read()
        except ConfigCorrupt as exc:
            error = exc
        if error is not None:
            assert str(path) in error.message
            assert error.exit_code == 10
            assert "will not overwrite" in error.hint
        else:
            assert isinstance(data.raw, dict)
            exercise(data)
        assert snapshot(directory) == before


@fuzz_settings(150)
@given(config=configs)
async def test_any_json_config_reads_or_is_corrupt_and_updates_keep_unknown_fields(config: Any) -> None:
    with config_dir() as tmp:
        directory = Path(tmp)
        path = write_config(directory, json.dumps(config).encode())
        before = path.read_bytes()
        store = ConfigStore(directory)
        try:
            data = await store.read()
        except ConfigCorrupt:
            # Only a file that is not an object, or whose gateways is not one, is refused.
            assert not isinstance(config, dict) or not isinstance(config.get("gateways", {}), dict)
            with pytest.raises(ConfigCorrupt):
                await store.update(lambda d: d.put_rack(RackConfig("new", "https://gw.example.com")))
            assert path.read_bytes() == before
            return
        assert data.raw == config
        exercise(data)
        try:
            await store.update(lambda d: d.put_rack(RackConfig("new", "https://gw.example.com", token="t")))
        except ConfigError:
            assert path.read_bytes() == before
            return
        after = json.loads(path.read_bytes())
        assert {k: v for k, v in after.items() if k != "gateways"} == {
            k: v for k, v in config.items() if k != "gateways"
        }
        old = config.get("gateways", {})
        assert {k: v for k, v in after["gateways"].items() if k != "new"} == {
            k: v for k, v in old.items() if k != "new"
        }
        assert after["gateways"]["new"]["url"] == "https://gw.example.com"


@fuzz_settings(40)
@given(
    config=shaped_configs,
    args=st.sampled_from([["racks"], ["racks", "--json"], ["switch", "production"], ["logout", "--local"]]),
)
async def test_racks_and_switch_on_any_config_never_show_a_traceback(config: Any, args: list[str]) -> None:
    with config_dir() as tmp:
        directory = Path(tmp)
        write_config(directory, json.dumps(config).encode())
        out, err = io.StringIO(), io.StringIO()
        app = App(options=Options(config_dir=directory), environ={}, out=out, err=err, interactive=False)
        with anyio.fail_after(10):
            code = await run(args, obj=app)
        assert code != 1, err.getvalue()
        if code:
            assert err.getvalue().startswith("Error: "), err.getvalue()
        for text in (out.getvalue(), err.getvalue()):
            assert "\x1b" not in text
            assert "Traceback" not in text


@fuzz_settings(20)
@given(depth=st.integers(900, 1100))
async def test_json_nested_about_as_deep_as_python_recurses_reads_and_updates_or_is_corrupt(depth: int) -> None:
    # json.loads and json.dumps recurse in C up to the interpreter's limit, from different stacks
    # (the event loop's, a worker thread's): a depth one accepts must not break the other.
    with config_dir() as tmp:
        directory = Path(tmp)
        content = ('{"gateways": {}, "deep": ' + "[" * depth + "]" * depth + "}").encode()
        path = write_config(directory, content)
        store = ConfigStore(directory)
        try:
            await store.read()
            await store.update(lambda d: d.put_rack(RackConfig("new", "https://gw.example.com")))
        except ConfigCorrupt:
            assert path.read_bytes() == content
        else:
            assert json.loads(path.read_bytes())["gateways"]["new"]["url"] == "https://gw.example.com"
