"""A cancelled config update never loses another process's update (issue 19, defect 1).

Here one task cancels its own updates at random points, each one's change made slow enough (it runs
under the lock, in the worker thread) that the cancel lands while the read-modify-write is under
way, and another *process* keeps updating other racks of the same ``config.json`` all the while.
Every update that reported success, on either side, must be in the final file: a worker thread left
running after its caller was cancelled (and the lock released) would write back a file read before
the other process's write, and that write would be lost.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from rgw.config import ConfigData, ConfigStore
from rgw.models import RackConfig

pytestmark = pytest.mark.anyio

ROUNDS = 150

#: The other process: adds rack ``other-N`` (N = 0, 1, ...) until ``stop`` appears, and appends the
#: name of each one it was told had been stored to ``log``.
OTHER = """
import sys, anyio
from pathlib import Path
from rgw.config import ConfigStore
from rgw.models import RackConfig

async def main(directory, log, stop):
    store = ConfigStore(directory)
    with open(log, "a") as out:
        n = 0
        while not stop.exists():
            name = f"other-{n}"
            await store.update(lambda data: data.put_rack(RackConfig(name=name, url="https://other")))
            out.write(name + "\\n")
            out.flush()
            n += 1

anyio.run(main, Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
"""


def slow_put(name: str, pause: float) -> Callable[[ConfigData], None]:
    def change(data: ConfigData) -> None:
        time.sleep(pause)  # the change runs in the worker thread, under the lock: keep it there a while
        data.put_rack(RackConfig(name=name, url="https://mine"))

    return change


@pytest.mark.serial(
    "its cancellations land within milliseconds of an update of the config file; beside other tests' "
    "processes every update outlasts them, none is cancelled mid-way, and the test proves nothing"
)
async def test_cancelled_updates_lose_no_other_process_update(tmp_path: Path) -> None:
    config, log, stop = tmp_path / "config", tmp_path / "other.log", tmp_path / "stop"
    store = ConfigStore(config)
    await store.ensure_directory()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    other = subprocess.Popen([sys.executable, "-c", OTHER, str(config), str(log), str(stop)], env=env)
    try:
        with anyio.fail_after(60):
            while not log.exists() or not log.read_text():  # the other process is writing
                await anyio.sleep(0.01)
        mine: list[str] = []
        rng = random.Random(19)
        for n in range(ROUNDS):
            name = f"mine-{n}"
            with anyio.move_on_after(rng.uniform(0.0, 0.004)):
                # A long change outlasts the other process's wait between two tries of the lock.
                pause = rng.uniform(0.001, 0.006) if rng.random() < 0.5 else rng.uniform(0.02, 0.06)
                await store.update(slow_put(name, pause))
                mine.append(name)
            if rng.random() < 0.5:
                await anyio.sleep(rng.uniform(0.0, 0.004))  # room for the other process to take the lock
    finally:
        stop.touch()
        other.wait(timeout=60)
    assert other.returncode == 0
    stored = set(json.loads((config / "config.json").read_text())["gateways"])
    theirs = log.read_text().split()
    assert theirs, "the other process stored nothing"
    assert 0 < len(mine) < ROUNDS, "some updates must have been cancelled, and some not"
    assert not [name for name in theirs + mine if name not in stored], "updates that reported success were lost"
