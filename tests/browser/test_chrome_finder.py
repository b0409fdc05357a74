"""Finding Chromium: a missing browser or driver is a reason to skip that names what to install."""

from __future__ import annotations

import sys

from tests.browser.chrome import Found, find_chromium


def test_nothing_missing_means_no_reason() -> None:
    assert Found("/usr/bin/chromium", "/usr/bin/chromedriver").missing is None


def test_a_missing_driver_or_browser_is_named_with_what_to_install() -> None:
    assert Found("/usr/bin/chromium", None).missing == (
        "chromium-driver not installed (Debian: apt-get install -y chromium chromium-driver; .ci/run does it); "
        "the browser tests need a real Chromium"
    )
    assert Found(None, None).missing is not None
    assert Found(None, None).missing.startswith("chromium and chromium-driver not installed")  # type: ignore[union-attr]


def test_overrides_must_be_programs() -> None:
    found = find_chromium({"RGW_CHROMIUM": "/nonexistent/chromium", "RGW_CHROMEDRIVER": sys.executable})
    assert (found.browser, found.driver) == (None, sys.executable)
