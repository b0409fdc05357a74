"""The debug log behind ``--verbose``: redaction at the source and in the CLI's handler."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from rgw import trace
from rgw.cli.app import App, Options


def test_redact_url_hides_every_query_value_and_user_info() -> None:
    assert trace.redact_url("https://gw.example.com/api/v1/info") == "https://gw.example.com/api/v1/info"
    assert (
        trace.redact_url("http://127.0.0.1:8/api/v1/auth/cli/callback?code=4/0Ab&state=xyz")
        == "http://127.0.0.1:8/api/v1/auth/cli/callback?code=***&state=***"
    )
    assert trace.redact_url("https://bob:hunter2@gw.example.com/x?token") == "https://***@gw.example.com/x?token=***"
    assert trace.redact_url("https://gw.example.com/x#frag") == "https://gw.example.com/x"


def test_nothing_is_logged_until_someone_listens(tmp_path: Path) -> None:
    assert not trace.enabled()
    app = App(options=Options(config_dir=tmp_path), environ={}, err=io.StringIO())
    assert app.start_verbose()
    assert not app.start_verbose()  # once per run
    assert trace.enabled()
    app.stop_verbose()
    assert not trace.enabled()
    assert logging.getLogger("rgw").handlers == []


def test_the_handler_scrubs_every_credential_of_the_run_and_escapes_control_characters(tmp_path: Path) -> None:
    err = io.StringIO()
    app = App(
        options=Options(config_dir=tmp_path, api_token="rgw_flag_token", mfa_code="123456"),
        environ={"RACK_GATEWAY_API_TOKEN": "rgw_env_token"},
        err=err,
    )
    app.secrets.add("rgw_sess_stored")
    app.start_verbose()
    try:
        trace.debug("sent %s, %s, %s and %s", "rgw_sess_stored", "rgw_flag_token", "rgw_env_token", "code 123456")
        trace.debug("gateway said \x1b[2Jgotcha")
    finally:
        app.stop_verbose()
    lines = [line.split("] ", 1)[1] for line in err.getvalue().splitlines()[1:]]
    assert lines == ["sent ***, ***, *** and code ***", "gateway said \\x1b[2Jgotcha"]
