"""Headless Chromium for the browser tests: Debian's ``chromium`` and ``chromium-driver``, driven by Selenium.

``find_chromium()`` says where both are, or why they cannot be used (the tests are then skipped with
that reason).  ``start_chromium()`` starts one headless browser whose resolver answers loopback names
only, so no page can reach anything off this machine (oidc-provider-mock's pages link a stylesheet on
a CDN: it simply fails).  ``Page`` wraps the session for one test: wait for a URL or a text (polling,
never a fixed sleep), fill and press, open a new tab, and save numbered screenshots.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

BROWSERS = ("chromium", "chromium-browser")
DRIVERS = ("chromedriver",)
WAIT = 20.0
POLL = 0.05
WINDOW = (900, 720)


@dataclass(frozen=True)
class Found:
    browser: str | None
    driver: str | None

    @property
    def missing(self) -> str | None:
        """Why the browser tests cannot run here, or None."""
        lacking = [name for name, path in (("chromium", self.browser), ("chromium-driver", self.driver)) if not path]
        if not lacking:
            return None
        return (
            f"{' and '.join(lacking)} not installed (Debian: apt-get install -y chromium chromium-driver; "
            ".ci/run does it); the browser tests need a real Chromium"
        )


def _locate(override: str | None, names: tuple[str, ...]) -> str | None:
    if override:  # RGW_CHROMIUM / RGW_CHROMEDRIVER: this file, if it is a program
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    return next(filter(None, map(shutil.which, names)), None)


def find_chromium(environ: dict[str, str] | None = None) -> Found:
    env = os.environ if environ is None else environ
    return Found(_locate(env.get("RGW_CHROMIUM"), BROWSERS), _locate(env.get("RGW_CHROMEDRIVER"), DRIVERS))


def start_chromium(found: Found, profile: Path) -> WebDriver:
    assert found.browser is not None
    assert found.driver is not None
    options = Options()
    options.binary_location = found.browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-features=Translate,MediaRouter,OptimizationHints,HttpsUpgrades",
        "--lang=en-US",
        # Loopback only: any other host name fails to resolve at once.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
    ):
        options.add_argument(arg)
    options.page_load_strategy = "normal"
    # Both paths are given, so Selenium never looks for (or downloads) a driver of its own.
    service = Service(executable_path=found.driver, log_output=os.devnull)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


def reset(driver: WebDriver) -> None:
    """Back to one blank tab with no cookies (between tests)."""
    handles = driver.window_handles
    for handle in handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(handles[0])
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "page"


@dataclass
class Page:
    """The browser, for one test: waits, forms, tabs and screenshots (saved under ``artifacts``)."""

    driver: WebDriver
    artifacts: Path
    shots: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    @property
    def text(self) -> str:
        """The page's text; a page replaced while it is read (Chromium: "Node ... does not belong to the
        document") is read again, as ``wait_for`` does."""
        found: list[str] = []

        def read(driver: WebDriver) -> bool:
            try:
                found.append(str(driver.find_element(By.TAG_NAME, "body").text))
            except WebDriverException as exc:
                if "does not belong to the document" not in str(exc):
                    raise
                raise StaleElementReferenceException(str(exc)) from None
            return True

        self.wait_for(read, "the page's text")
        return found[-1]

    def open(self, url: str, *, new_tab: bool = False) -> None:
        if new_tab:
            self.driver.switch_to.new_window("tab")
        self.driver.get(url)

    def wait_for(self, condition: Callable[[WebDriver], object], what: str, timeout: float = WAIT) -> None:
        try:
            # A page replaced while it is being read (a form posted, a redirect) is read again.
            WebDriverWait(
                self.driver,
                timeout,
                poll_frequency=POLL,
                ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
            ).until(condition)
        except TimeoutException:
            self.screenshot(f"timeout-{what}")
            raise AssertionError(
                f"the browser did not reach {what} within {timeout:g} s; it is at {self.url}, showing:\n{self.text}"
            ) from None

    def wait_for_url(self, prefix: str, what: str, timeout: float = WAIT) -> None:
        self.wait_for(lambda d: str(d.current_url).startswith(prefix), what, timeout)

    def wait_for_text(self, text: str, timeout: float = WAIT) -> None:
        self.wait_for(lambda d: text in d.find_element(By.TAG_NAME, "body").text, repr(text), timeout)

    def fill(self, name: str, value: str) -> None:
        self.wait_for(lambda d: d.find_elements(By.NAME, name), f"a field named {name}")
        box = self.driver.find_element(By.NAME, name)
        box.clear()
        box.send_keys(value)

    def press(self, css: str) -> None:
        self.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, css), f"a button {css}")
        self.driver.find_element(By.CSS_SELECTOR, css).click()

    def screenshot(self, name: str) -> Path:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{_slug(name)}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path


def profile_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="rgw-chromium-"))
