"""The browser tier: a real Chromium, a real OpenID Connect provider, the CLI as a real subprocess.

Every test here is marked ``browser`` (``-m "not browser"`` leaves them out).  One headless Chromium
serves the whole session (``chromium``); each test gets it back as a blank tab with no cookies
(``page``), a ``UrlInbox`` that the CLI's ``$BROWSER`` hands its sign-in URL to (``inbox``), and
``cli``, which starts ``python -m rgw`` subprocesses and reaps them after the test.  Without
Chromium or its driver every test is skipped, and pytest's summary (``-ra``) prints why.
Screenshots are saved under ``test-artifacts/browser/<test>/`` (``RGW_ARTIFACTS`` moves the root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from rgw.testing.handoff import UrlInbox
from tests.browser.chrome import Page, _slug, find_chromium, profile_dir, reset, start_chromium
from tests.integration.pipes import PipeReader

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RGW_ARTIFACTS") or REPO / "test-artifacts") / "browser"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium() -> Iterator[WebDriver]:
    found = find_chromium()
    if found.missing:
        pytest.skip(found.missing)
    profile = profile_dir()
    driver = start_chromium(found, profile)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(chromium: WebDriver, request: pytest.FixtureRequest) -> Page:
    reset(chromium)
    artifacts = ARTIFACTS / _slug(request.node.name)
    shutil.rmtree(artifacts, ignore_errors=True)
    return Page(chromium, artifacts)


@pytest.fixture
def inbox() -> Iterator[UrlInbox]:
    with UrlInbox() as box:
        yield box


@dataclass
class Login:
    """A running ``rack-gateway`` subprocess and its output."""

    proc: subprocess.Popen[str]
    out: PipeReader
    err: PipeReader

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        return code, self.out.text(), self.err.text()


@dataclass
class Cli:
    """Starts the CLI as a subprocess with its own config directory; ``$BROWSER`` goes to the inbox."""

    config: Path
    inbox: UrlInbox
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_")) and k not in ("DISPLAY", "WAYLAND_DISPLAY")
        }
        env["BROWSER"] = self.inbox.browser_command()
        env["TERM"] = "dumb"
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "rgw", "--config", str(self.config), *args]

    def start(self, *args: str) -> Login:
        proc = subprocess.Popen(
            self.argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )
        self.started.append(proc)
        return Login(proc, PipeReader(proc.stdout, "the CLI's stdout"), PipeReader(proc.stderr, "the CLI's stderr"))

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def reap(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def cli(tmp_path: Path, inbox: UrlInbox) -> Iterator[Cli]:
    runner = Cli(tmp_path / "config", inbox)
    try:
        yield runner
    finally:
        runner.reap()
