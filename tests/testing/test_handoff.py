"""``rgw.testing.handoff``: ``$BROWSER`` hands the CLI's URL to a test's inbox, through Python's ``webbrowser``."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from rgw.testing.handoff import UrlInbox, main

URL = "http://127.0.0.1:8080/auth/cli/begin?state=abc&x=%3A"


def test_webbrowser_running_the_browser_command_delivers_the_url() -> None:
    with UrlInbox() as inbox:
        command = inbox.browser_command()
        assert ":" not in command  # $BROWSER is split on ":"
        env = {**os.environ, "BROWSER": command}
        opened = subprocess.run(
            [sys.executable, "-c", f"import webbrowser, sys; sys.exit(0 if webbrowser.open({URL!r}) else 3)"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert opened.returncode == 0, opened.stderr
        assert inbox.next_url(10) == URL
        assert inbox.received == [URL]


def test_only_the_inbox_path_is_taken() -> None:
    with UrlInbox() as inbox:
        wrong = httpx.post(f"http://127.0.0.1:{inbox.port}/elsewhere", content=b"http://x", timeout=5, trust_env=False)
        assert wrong.status_code == 404
        assert inbox.received == []
        with pytest.raises(AssertionError, match=r"^no URL was handed to the browser within 0\.05 s$"):
            inbox.next_url(0.05)


def test_an_unreachable_inbox_makes_the_command_fail(capsys: pytest.CaptureFixture[str]) -> None:
    with UrlInbox() as inbox:
        port = inbox.port
    assert main([str(port), "path", URL]) == 1  # the inbox has closed
    assert "handoff: the browser's inbox did not answer (ConnectError)" in capsys.readouterr().err
    assert main(["not-a-port", "path", URL]) == 2
