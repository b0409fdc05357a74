"""Fuzzing the files other processes (or an attacker) leave in the config directory (issue 20, item 12).

- The coalescing lock's holder record (``login-<hash>.lock``): any bytes give a holder whose fields
  are each usable or None, a description that is one printable line, and a PID that is a process's
  (never 0, negative or past 2**31: ``kill(-1, 0)`` reaches every process, a huge one overflows).
- The pending record (``pending-<hash>.json``): any bytes or JSON give no pending login or one that
  is fit to resume: its own rack and URL, state and verifier tokens, started within the resume window
  (no NaN, no far future), a listener URI on a port that exists or none.  Never a traceback.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rgw.locks import describe_holder, read_holder
from rgw.login.coalesce import RackLoginLock
from rgw.login.pending import RESUME_MAX_AGE, PendingLogins
from rgw.text import is_token
from tests.fuzzing import fuzz_settings

pytestmark = pytest.mark.anyio

RACK, URL = "prod", "https://gw.example.com"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # file I/O in worker threads: nothing here differs between the backends


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.sampled_from([1e999, -1e999, 1e12, 2**31, 2**31 - 1, 0, -1])
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
nested = st.tuples(st.integers(1, 50_000), st.sampled_from([b"[", b'{"a":', b'{"pid":'])).map(lambda t: t[1] * t[0])


def dumps(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


# -- the holder record ---------------------------------------------------------------------------

holder_records = st.fixed_dictionaries(
    {},
    optional={
        "pid": json_values | st.integers(-(2**64), 2**64),
        "command": json_values | st.text(max_size=100),
        "url": json_values | st.sampled_from([URL, "http://evil.example", "", "x" * 10_000]),
        "auth_url": json_values | st.sampled_from([URL + "/in?state=x", "javascript:alert(1)", "\x1b]0;t\x07"]),
    },
)
holder_contents = st.binary(max_size=300) | holder_records.map(dumps) | json_values.map(dumps) | nested


@fuzz_settings(300)
@given(content=holder_contents)
async def test_any_holder_record_is_read_as_usable_fields_or_none(content: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="rgw-fuzz-") as name:
        directory = Path(name)
        lock = RackLoginLock(directory, RACK, URL)
        lock.path.write_bytes(content)
        with anyio.fail_after(10):
            record = read_holder(lock.path)
            holder = await lock.holder()
        assert record is None or isinstance(record, dict)
        said = describe_holder(record)
        assert said.isprintable()
        assert said == "another process" or said.startswith("process ")
        if said != "another process":
            assert record is not None
            pid = record["pid"]
            assert isinstance(pid, int)
            assert not isinstance(pid, bool)
            assert 0 < pid < 2**31
        assert holder.pid is None or (type(holder.pid) is int and 0 < holder.pid < 2**31)
        for url in (holder.url, holder.auth_url):
            assert url is None or (isinstance(url, str) and 0 < len(url) <= 8192)
        assert lock.path.read_bytes() == content  # reading changes nothing


# -- the pending record --------------------------------------------------------------------------

NOW = time.time()
tokens = st.text(alphabet="abcXYZ019-_.~", min_size=1, max_size=60)
listeners = st.sampled_from(
    [
        "http://127.0.0.1:99999/" + "C" * 22,
        "http://127.0.0.1:65536/" + "C" * 22,
        "http://127.0.0.1:65535/" + "C" * 22,
        "http://127.0.0.1:0/" + "C" * 22,
        "http://127.0.0.1:8080/" + "C" * 22,
        "http://evil.example:8080/" + "C" * 22,
    ]
) | st.builds(lambda port, path: f"http://127.0.0.1:{port}/{path}", st.integers(0, 999_999), st.text(max_size=70))
times = (
    st.floats()
    | st.integers(-(2**70), 2**70)
    | st.floats(NOW - 2 * RESUME_MAX_AGE, NOW + 2 * RESUME_MAX_AGE)
    | st.sampled_from([NOW, NOW - 1, 1e12, 1e999, 4102444800.0, True])
)
pending_records = st.fixed_dictionaries(
    {},
    optional={
        "format": st.sampled_from([1, 1.0, True, 2, "1"]) | json_values,
        "rack": st.sampled_from([RACK, "other"]) | json_values,
        "url": st.sampled_from([URL, "https://evil.example"]) | json_values,
        "auth_url": st.sampled_from([URL + "/in?state=x", "javascript:alert(1)"]) | json_values,
        "state": tokens | json_values,
        "code_verifier": tokens | json_values,
        "loopback": st.booleans() | json_values,
        "started_at": times | json_values,
        "listener": listeners | json_values,
    },
)
#: Records that pass the rack, URL and format checks, so the rest is what gets fuzzed.
shaped_pending = pending_records.map(lambda r: {**r, "format": 1, "rack": RACK, "url": URL})
pending_contents = (
    st.binary(max_size=300) | pending_records.map(dumps) | shaped_pending.map(dumps) | json_values.map(dumps) | nested
)


@fuzz_settings(400)
@given(content=pending_contents)
async def test_any_pending_record_is_ignored_or_fit_to_resume(content: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="rgw-fuzz-") as name:
        pending = PendingLogins(Path(name), RACK, URL, clock=lambda: NOW)
        pending.path.write_bytes(content)
        pending.path.chmod(0o600)
        with anyio.fail_after(10):
            found = await pending.load()
        if found is None:
            return
        assert (found.rack, found.url) == (RACK, URL)
        assert is_token(found.start.state)
        assert is_token(found.start.code_verifier)
        assert math.isfinite(found.started_at)
        assert NOW - RESUME_MAX_AGE <= found.started_at <= NOW
        if found.listener is not None:
            assert found.start.loopback
            parts = urlsplit(found.listener)
            assert parts.hostname == "127.0.0.1"
            assert parts.port is not None
            assert 0 < parts.port <= 65535
