"""Many racks in one command, many processes on one config file, and coalesced same-rack logins."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from rgw.testing import RunningGateway
from tests.integration.conftest import Cli
from tests.integration.pipes import PipeReader
from tests.integration.procs import spawn
from tests.ports import refused_url

pytestmark = pytest.mark.anyio


def dead_url() -> str:
    return refused_url()  # held bound: no server of a test beside this one is given its port


def seed_racks(cli: Cli, racks: dict[str, str]) -> None:
    cli.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    gateways = {name: {"url": url, "go_only": name} for name, url in racks.items()}
    (cli.config_dir / "config.json").write_text(json.dumps({"current": "a", "gateways": gateways}))


async def test_many_racks_in_one_command(cli: Cli, gateway: RunningGateway) -> None:
    seed_racks(cli, {"a": gateway.url, "b": gateway.url, "c": gateway.url})
    result = await cli("login", "--rack", "a", "--rack", "b", "--rack", "c", "--rack", "a")
    assert result.code == 0, result.err
    assert result.lines[0].split() == ["RACK", "RESULT", "DETAIL"]
    assert sorted(line.split()[:3] for line in result.lines[1:]) == [[name, "logged", "in"] for name in ("a", "b", "c")]
    assert "Opening one browser tab to sign in to 3 racks..." in result.err
    config = cli.config()
    assert config["current"] == "a"  # a multi-rack login does not move the current rack
    for name in ("a", "b", "c"):
        entry = config["gateways"][name]
        assert gateway.gateway.session_valid(entry["token"])
        assert entry["go_only"] == name


async def test_partial_failure_keeps_the_racks_that_succeeded(cli: Cli, gateway: RunningGateway) -> None:
    seed_racks(cli, {"a": gateway.url, "down": dead_url(), "c": gateway.url})
    result = await cli("login", "--all", "--json", "--timeout", "30")
    assert result.code == 11
    results = {r["rack"]: r for r in json.loads(result.out)}
    assert results["a"]["ok"]
    assert results["c"]["ok"]
    assert not results["down"]["ok"]
    assert results["down"]["exit_code"] == 5
    assert "connection refused" in results["down"]["error"]
    assert result.err.splitlines()[-2].startswith("Error: 1 of 3 rack logins failed: down")
    config = cli.config()
    assert "token" in config["gateways"]["a"]
    assert "token" in config["gateways"]["c"]
    assert "token" not in config["gateways"]["down"]


async def test_expired_only_logs_in_just_the_rejected_racks(cli: Cli, gateway: RunningGateway) -> None:
    seed_racks(cli, {"a": gateway.url, "b": gateway.url})
    assert (await cli("login", "--all")).code == 0
    before = cli.config()["gateways"]
    gateway.gateway.revoke_session(before["b"]["session_id"])
    result = await cli("login", "--all", "--expired-only", "--json")
    assert result.code == 0, result.err
    assert [r["rack"] for r in json.loads(result.out)] == ["b"]
    after = cli.config()["gateways"]
    assert after["a"]["token"] == before["a"]["token"]
    assert after["b"]["token"] != before["b"]["token"]
    nothing = await cli("login", "--all", "--expired-only")
    assert nothing.code == 0
    assert "Every selected rack already has a valid session." in nothing.err


def test_two_logins_to_the_same_rack_coalesce(gateway: RunningGateway, tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    gateway.gateway.reset_counts()
    # The first login waits for a sign-in that only the test will do, so it is still running when
    # the second one starts, however slow the machine.
    first = spawn(config, "login", "dev", gateway.url, "--timeout", "60", "--no-browser")
    out1, err1 = PipeReader(first.stdout, "the first login"), PipeReader(first.stderr, "the first login")
    prefix = "Open this URL in your browser: "
    url = err1.wait_for(lambda line: line.startswith(prefix), 30, "sign-in URL").removeprefix(prefix).strip()
    err1.wait_for(lambda line: line.startswith("Waiting for the browser"), 30, "wait for the sign-in")
    second = spawn(config, "login", "dev", gateway.url, "--timeout", "60")
    out2, err2 = PipeReader(second.stdout, "the second login"), PipeReader(second.stderr, "the second login")
    err2.wait_for(
        lambda line: line.startswith("A login to this rack is already running in process"), 30, "coalesced wait"
    )
    gateway.gateway.complete_browser_login(parse_qs(urlsplit(url).query)["state"][0], "developer@example.com")
    assert first.wait(timeout=60) == 0, err1.text()
    assert second.wait(timeout=60) == 0, err2.text()
    assert out1.text() == out2.text() == "Logged in as developer@example.com\n"
    said = err2.text()
    assert f"A login to this rack is already running in process {first.pid}; waiting for its session..." in said
    assert f"Its sign-in URL: {url}\n" in said
    assert "Opening browser" not in said
    assert gateway.gateway.request_count("/api/v1/auth/cli/start") == 1


#: The one failure a concurrent ``switch rack00`` may have: rack00 was not stored yet when it ran
#: (the racks it lists are the ones whose logins had finished by then).
SWITCH_TOO_EARLY = re.compile(
    r"Error: unknown rack 'rack00' \(configured: (none|rack(0[1-9]|1[0-9])(, rack(0[1-9]|1[0-9]))*)\)\n"
    r"Please run: rack-gateway login rack00 <gateway-url>\n"
)
RACKS_ROW = re.compile(
    r" *(\* +)?rack\d\d +http://127\.0\.0\.1:\d+ +developer@example\.com +logged in \(\d+[dhm] left\)"
)


@dataclass
class FileWatch:
    """Reads a file over and over in a thread: every version seen must be a whole config, and no
    version may lose a rack an earlier one had (the racks of this test are only ever added)."""

    path: Path
    stop: threading.Event = field(default_factory=threading.Event)
    versions: set[bytes] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def run(self) -> None:
        racks: set[str] = set()
        while not self.stop.wait(0.0005):  # about a thousand reads a second, leaving the CPU to the test
            try:
                content = self.path.read_bytes()
            except FileNotFoundError:
                if racks:
                    self.problems.append("config.json disappeared")
                continue
            if content in self.versions:
                continue
            self.versions.add(content)
            try:
                now = set(json.loads(content)["gateways"])
            except (ValueError, KeyError, TypeError) as exc:
                self.problems.append(f"not a whole config ({exc}): {content[:80]!r}...")
                continue
            if not racks <= now:
                self.problems.append(f"racks lost: {sorted(racks - now)}")
            racks = now


def test_twenty_processes_share_one_config_file(gateway: RunningGateway, tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    watch = FileWatch(config / "config.json")
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    logins = [spawn(config, "login", f"rack{i:02d}", gateway.url, "--timeout", "90") for i in range(20)]
    # A pair of readers (racks, switch rack00) at the start and each time another login finishes, so
    # they read while the file is being rewritten; each with how many logins had finished when it
    # started, and whether rack00's login was among them (rack00 saved).
    readers: list[tuple[subprocess.Popen[str], int, bool]] = []
    finished = -1
    while any(p.poll() is None for p in logins):
        done = sum(p.poll() is not None for p in logins)
        if done != finished:
            finished, rack00_saved = done, logins[0].poll() == 0
            readers.append((spawn(config, "racks"), done, rack00_saved))
            readers.append((spawn(config, "switch", "rack00"), done, rack00_saved))
        time.sleep(0.05)  # how often the logins are looked at; each ends by its own --timeout
    for proc in logins:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        assert out == "Logged in as developer@example.com\n"
    watch.stop.set()
    watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert watch.problems == []
    assert len(watch.versions) > 1  # it saw the file change under it
    assert any(0 < done < len(logins) for _, done, _ in readers), "no reader ran while the logins were writing"
    for proc, done, rack00_saved in readers:
        out, err = proc.communicate(timeout=90)
        command = proc.args[-1] if isinstance(proc.args, list) else proc.args
        if command == "racks":
            # Any version of the file is a whole one: a table with at least the racks whose logins
            # had finished when the reader started, or (before any had) no racks at all.
            assert proc.returncode == 0, err
            lines = out.splitlines()
            if lines:
                assert lines[0].split() == ["NAME", "URL", "USER", "SESSION"], out
                assert all(RACKS_ROW.fullmatch(line) for line in lines[1:]), out
                assert len(lines) - 1 >= done, out
            else:
                assert done == 0, err
                assert err == "No racks configured. Please run: rack-gateway login <rack> <gateway-url>\n"
        elif proc.returncode == 10 and not rack00_saved and SWITCH_TOO_EARLY.fullmatch(err):
            assert out == ""  # ran before rack00 existed: a clean, specific failure
        else:
            # A corrupt read, a lock timeout or anything else is a failure (exit 10 included).
            assert proc.returncode == 0, err
            assert out == "Switched to rack00\n"
            assert err == ""
    data = json.loads((config / "config.json").read_text())
    assert stat.S_IMODE((config / "config.json").stat().st_mode) == 0o600
    assert sorted(data["gateways"]) == [f"rack{i:02d}" for i in range(20)]
    for entry in data["gateways"].values():
        assert gateway.gateway.session_valid(entry["token"])
    assert not [p for p in config.iterdir() if p.name.endswith(".tmp")]


#: Rewrites the config file with one more version until it is killed (or ``argv[2]`` times): the
#: counter goes on from the file's, and every version written is reported on stdout.
WRITER = """
import anyio, sys
from pathlib import Path
from rgw.config import ConfigStore

def change(data):
    n = data.raw.get("counter", 0) + 1
    data.raw["counter"] = n
    data.raw["padding"] = "x" * (n % 5000)
    return n

async def main():
    store = ConfigStore(Path(sys.argv[1]))
    times = int(sys.argv[2])
    while times != 0:
        print(await store.update(change), flush=True)
        times -= 1

anyio.run(main)
"""
#: The temp files ``rgw.config`` writes next to the file before renaming them over it.
TEMP_FILE = re.compile(r"\.config\.json\.(\d+)\.[0-9a-f]{8}\.tmp")
LOCK_FILES = {"config.json.lock"}  # the one lock file; its holder writes its PID into it


def leftovers(config: Path, killed: set[int]) -> set[str]:
    """The temp files in ``config``: each one from a writer that was killed, at most one per writer."""
    found: dict[int, list[str]] = {}
    for path in config.iterdir():
        if path.name == "config.json" or path.name in LOCK_FILES:
            continue
        match = TEMP_FILE.fullmatch(path.name)
        assert match is not None, f"unexpected file left in the config directory: {path.name}"
        assert int(match[1]) in killed, f"{path.name} was left by a writer that was not killed"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        found.setdefault(int(match[1]), []).append(path.name)
    assert all(len(names) == 1 for names in found.values()), found
    return {name for names in found.values() for name in names}


def assert_whole(config: Path, counter: int) -> None:
    data = json.loads((config / "config.json").read_text())
    assert data["counter"] == counter
    assert data["padding"] == "x" * (counter % 5000)
    assert stat.S_IMODE((config / "config.json").stat().st_mode) == 0o600


def temp_file_of(config: Path, pid: int, timeout: float) -> str:
    """The name of ``pid``'s temp file once one is in ``config`` (the writer is inside a write)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # a busy scan: the file exists only while one version is written
        for name in os.listdir(config):
            match = TEMP_FILE.fullmatch(name)
            if match is not None and int(match[1]) == pid:
                return name
            assert match is not None or name == "config.json" or name in LOCK_FILES, f"unexpected file {name}"
    raise AssertionError(f"writer {pid} was never seen inside a write within {timeout:g} s")


def test_sigkill_mid_write_leaves_a_whole_file(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    last = 0
    killed: set[int] = set()
    mid_write_kills = 0
    for round_ in range(6):
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(config), "-1"], stdout=subprocess.PIPE, text=True
        ) as proc:
            try:
                out = PipeReader(proc.stdout, "the writer")
                first = int(out.wait_for(lambda line: True, 30, "first version"))
                assert first == last + 1  # it went on from the version the last kill left
                # Let it write more versions each round, then kill it while it goes on writing: right
                # after it reported a version (even rounds), or while its temp file is there (odd rounds).
                wanted = first + 2 ** (round_ // 2 + 1)
                out.wait_for(lambda line, wanted=wanted: int(line) >= wanted, 30, f"version {wanted}")
                if round_ % 2:
                    temp_file_of(config, proc.pid, 30)
            finally:
                proc.send_signal(signal.SIGKILL)  # the writer never stops by itself
            proc.wait(timeout=10)
            reported = [int(line) for line in out.text().split()]
        assert proc.returncode == -signal.SIGKILL
        killed.add(proc.pid)
        assert reported == list(range(first, reported[-1] + 1))
        assert reported[-1] >= wanted > first + 1  # it had written versions and was writing more
        # The file is whole: the last version the writer reported, or one it renamed into place but
        # had not reported yet when the kill landed.
        counter = json.loads((config / "config.json").read_text())["counter"]
        assert counter in (reported[-1], reported[-1] + 1)
        assert counter > last
        assert_whole(config, counter)
        left = {name for name in leftovers(config, killed) if f".{proc.pid}." in name}
        if left:
            # Killed inside a write: that version never reached config.json.
            assert counter == reported[-1]
            mid_write_kills += 1
        last = counter
    assert mid_write_kills > 0, "no kill landed inside a write (no temp file was ever left)"
    # A new writer's one successful write leaves the file whole and no temp file of its own; what the
    # killed writers left is left alone.
    before = leftovers(config, killed)
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(config), "1"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{last + 1}\n"
    assert_whole(config, last + 1)
    assert leftovers(config, killed) == before


async def test_when_every_rack_fails_the_error_does_not_speak_of_racks_that_succeeded(cli: Cli) -> None:
    seed_racks(cli, {"a": dead_url(), "b": dead_url()})
    result = await cli("login", "--all", "--timeout", "5")
    assert result.code == 11
    assert result.err.splitlines()[-2:] == [
        "Error: all 2 rack logins failed: a, b",
        "No rack was logged in. The details are above; run the login again when they are fixed.",
    ]
