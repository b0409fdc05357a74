"""Run ``rack-gateway`` in this process with the scripted browser (for benchmarks).

python benchmarks/_cli_driver.py CONFIG_DIR login --all
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.testing import ScriptedBrowser


async def main() -> int:
    config = Path(sys.argv[1])
    app = App(options=Options(config_dir=config), environ={}, browser=ScriptedBrowser(), interactive=False)
    return await run(sys.argv[2:], obj=app)


if __name__ == "__main__":
    sys.exit(anyio.run(main))
