"""The system browser launcher: $BROWSER honoured, console browsers refused, parallel launches safe."""

from __future__ import annotations

import os
import subprocess
import sys

from rgw.login.browser import NoBrowser, SystemBrowser, can_open

PARALLEL = """
import anyio, os
from rgw.login.browser import SystemBrowser

async def main():
    browser = SystemBrowser(os.environ)  # webbrowser reads $BROWSER from the process environment
    results = []
    async def one(i):
        results.append(await browser.open(f"https://gw.example.com/{i}"))
    async with anyio.create_task_group() as tg:
        for i in range(24):
            tg.start_soon(one, i)
    print(sum(results), len(results))

anyio.run(main)
"""


def test_parallel_first_launches_all_find_the_browser() -> None:
    # webbrowser fills its registry on first use; threads racing it used to find no browser at all,
    # and a multi-rack login then waited out its deadline for a browser that never opened.
    for _ in range(3):  # each run is a fresh interpreter: a fresh registry
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env["BROWSER"] = "true %s"
        done = subprocess.run(
            [sys.executable, "-c", PARALLEL], capture_output=True, text=True, timeout=60, check=True, env=env
        )
        assert done.stdout.split() == ["24", "24"], done.stderr


def test_availability() -> None:
    assert not can_open(NoBrowser())
    assert can_open(SystemBrowser({"BROWSER": "firefox"}))
    assert not can_open(SystemBrowser({}))  # no display, no $BROWSER (Linux)
    assert can_open(SystemBrowser({"DISPLAY": ":0"}))
    assert can_open(object())  # a launcher without the check is trusted  # type: ignore[arg-type]
