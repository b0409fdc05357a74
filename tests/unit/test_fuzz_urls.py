"""Fuzzing URL and rack-name parsing, and the CLI's ``login RACK URL``: any string is accepted or
refused with a clean ``RgwError`` (never exit 1, never a traceback), and a refused login leaves the
config file as it was.

A URL ``normalize_url`` accepts must also be one the HTTP client can use: a ``GatewayClient`` for
it is built and sends a request (through ``MockTransport``, so nothing leaves the machine).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.client import GatewayClient
from rgw.config import ConfigData
from rgw.errors import UsageError
from rgw.targets import MAX_RACK_NAME, Selection, check_rack_name, login_target
from rgw.urls import normalize_url
from tests.fuzzing import attempt, fuzz_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # parsing, and an in-process CLI run that never reaches the network


URL_PIECES = st.sampled_from(
    [
        "http://",
        "https://",
        "ftp://",
        "://",
        "[",
        "]",
        "::1",
        "127.0.0.1",
        "localhost",
        "gw.example.com",
        ":",
        "@",
        "/",
        "?",
        "#",
        "%",
        "%zz",
        "99999",
        "-1",
        " ",
        "\x00",
        "\x1b[2J",
        "\u202e",
        "é",
        "xn--",
        "..",
        "\\",
        "a" * 300,
    ]
)
urls = st.lists(URL_PIECES | st.text(max_size=8), max_size=8).map("".join) | st.text(max_size=60)
rack_names = (
    st.text(max_size=40)
    | st.sampled_from(["", " ", "prod ", "a\x1b[31mb", "\u202eprod", "a\nb", "-r", "--help", "a" * 5000, "é"])
    | st.integers(0, 6000).map(lambda n: "r" * n)
)


@fuzz_settings(400)
@given(url=urls)
async def test_any_url_is_normalized_to_one_the_client_can_use_or_refused(url: str) -> None:
    normalized, error = attempt(lambda: normalize_url(url))
    if error is not None:
        assert isinstance(error, UsageError)
        return
    assert normalized is not None
    assert normalized.startswith(("http://", "https://"))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[])

    client, error = attempt(lambda: GatewayClient(normalized, token="t", transport=httpx.MockTransport(handler)))
    if error is not None:
        assert isinstance(error, UsageError)  # a name only httpx can tell is malformed (IDNA)
        return
    assert client is not None
    with anyio.fail_after(10):
        async with client:
            assert await client.apps() == []


@fuzz_settings(300)
@given(name=rack_names)
def test_any_rack_name_is_taken_as_typed_or_refused(name: str) -> None:
    accepted, error = attempt(lambda: check_rack_name(name))
    if error is not None:
        assert isinstance(error, UsageError)
        assert len(error.message) < 300  # a 5000-character name is not printed back whole
        return
    assert accepted == name
    assert name.strip() == name
    assert name.isprintable()
    assert 0 < len(name) <= MAX_RACK_NAME


@fuzz_settings(300)
@given(rack=st.none() | rack_names, url=st.none() | urls, env_url=st.none() | urls)
def test_login_target_takes_any_arguments_or_refuses_them(
    rack: str | None, url: str | None, env_url: str | None
) -> None:
    data = ConfigData({"current": "stored", "gateways": {"stored": {"url": "https://gw.example.com"}}})
    selection = Selection(environ={"RACK_GATEWAY_URL": env_url} if env_url else {})
    request, error = attempt(lambda: login_target(data, selection, rack, url))
    if error is not None:
        assert error.exit_code in (2, 10), error
        return
    assert request is not None
    check_rack_name(request.rack)
    assert normalize_url(request.url) == request.url


CONFIG = {"current": "stored", "gateways": {"stored": {"url": "https://gw.example.com", "token": "rgw_sess_x"}}}


@fuzz_settings(150)
@given(rack=rack_names, url=urls)
async def test_cli_login_rack_url_refuses_bad_arguments_cleanly_and_keeps_the_config(rack: str, url: str) -> None:
    data = ConfigData(json.loads(json.dumps(CONFIG)))
    _request, error = attempt(lambda: login_target(data, Selection(), rack, url))
    assume(error is not None)  # a login that would go to the network: not this test's business
    with tempfile.TemporaryDirectory(prefix="rgw-fuzz-") as tmp:
        directory = Path(tmp)
        os.chmod(directory, 0o700)
        path = directory / "config.json"
        path.write_text(json.dumps(CONFIG))
        os.chmod(path, 0o600)
        before = path.read_bytes()
        out, err = io.StringIO(), io.StringIO()
        app = App(options=Options(config_dir=directory), environ={}, out=out, err=err, interactive=False)
        with anyio.fail_after(10):
            code = await run(["login", "--no-browser", "--timeout", "5", "--", rack, url], obj=app)
        assert code not in (0, 1), err.getvalue()
        lines = err.getvalue().splitlines()
        assert lines, "no error message"
        assert lines[0].startswith("Error: "), lines
        assert "Traceback" not in err.getvalue()
        assert "\x1b" not in err.getvalue()
        assert all(len(line) < 600 for line in lines), "a long argument is not printed back whole"
        assert out.getvalue() == ""
        assert path.read_bytes() == before
