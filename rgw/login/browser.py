"""Opening the user's browser, off the event loop.

``SystemBrowser`` uses the standard library's ``webbrowser`` in a worker thread, which honours
``$BROWSER``.  It refuses console browsers (lynx, w3m, ...) that ``webbrowser`` falls back to on a
machine with no display, unless ``$BROWSER`` asked for them: they would take over the terminal the
login is running in.  Any launcher is an object with ``async open(url) -> bool``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from typing import Protocol

from rgw import aio

_REGISTRY_LOCK = threading.Lock()
_CONSOLE_BROWSERS = frozenset({"www-browser", "links", "elinks", "lynx", "w3m", "links2"})


class BrowserLauncher(Protocol):
    async def open(self, url: str) -> bool:
        """Open ``url``; False when no browser could be opened."""
        ...


def can_open(browser: BrowserLauncher) -> bool:
    """Whether ``browser`` may open anything here (launchers without an ``available`` check: yes)."""
    available = getattr(browser, "available", None)
    return bool(available()) if callable(available) else True


class NoBrowser:
    """``--no-browser``: never opens anything; the URL is printed for the user."""

    def available(self) -> bool:
        return False

    async def open(self, url: str) -> bool:
        return False


class SystemBrowser:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def available(self) -> bool:
        """A browser could open: ``$BROWSER`` names one, or there is a display (or macOS/Windows)."""
        return bool(self.environ.get("BROWSER")) or self._has_display()

    def _has_display(self) -> bool:
        if sys.platform in ("darwin", "win32"):
            return True
        return bool(self.environ.get("DISPLAY") or self.environ.get("WAYLAND_DISPLAY"))

    def _open_blocking(self, url: str) -> bool:
        import webbrowser

        explicit = bool(self.environ.get("BROWSER"))
        if not explicit and not self._has_display():
            return False
        try:
            # webbrowser fills its registry on first use without holding its lock all the way
            # through: a second thread could see it half-filled and find no browser at all.
            with _REGISTRY_LOCK:
                controller = webbrowser.get()
        except webbrowser.Error:
            return False
        name = getattr(controller, "name", "") or ""
        if not explicit and os.path.basename(name) in _CONSOLE_BROWSERS:
            return False
        try:
            return bool(controller.open(url, new=2))
        except Exception:
            return False

    async def open(self, url: str) -> bool:
        return await aio.call(self._open_blocking, url, abandon=True)
