"""What a command imports: local commands load no HTTP stack, no event loop, no other command.

Each command runs as a real ``python`` process (a probe that runs ``rgw.cli.main`` and, at exit,
writes ``sys.modules`` to a file), so nothing imported by the test process itself can hide an import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway

PROBE = """
import atexit, json, sys
record = sys.argv.pop(1)
atexit.register(lambda: open(record, "w").write(json.dumps(sorted(sys.modules))))
from rgw.cli import main
main(sys.argv[1:])
"""

#: Never on the path of a local command (the issue's list, and what a loop would pull in).
HEAVY = (
    "httpx",
    "httpcore",
    "h11",
    "certifi",
    "tenacity",
    "fido2",
    "rgw.testing",
    "rgw.client",
    "rgw.login",
    "rgw.retry",
    "rgw.wire",  # the login answers: local commands need none
    "asyncio",
    "anyio",
    "aiofiles",
    "starlette",
    "uvicorn",
    "segno",
)
COMMAND_MODULES = (
    "rgw.cli.auth",
    "rgw.cli.rack",
    "rgw.cli.tokens",
    "rgw.cli.admin",
    "rgw.cli.dev",
    "rgw.cli.status",
    "rgw.cli.completion",
)
EMAIL = "developer@example.com"


def heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def command_modules(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if m in COMMAND_MODULES)


def imported(
    config: Path, tmp_path: Path, *args: str, env_extra: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    record = tmp_path / f"modules-{uuid.uuid4().hex}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_", "PYTHON"))}
    env["GATEWAY_CLI_CONFIG_DIR"] = str(config)
    env.update(env_extra or {})
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(record), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return done, json.loads(record.read_text())


@pytest.fixture
def gw() -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings()) as running:
        yield running


@pytest.fixture
def config(tmp_path: Path, gw: RunningGateway) -> Path:
    """Two racks: ``dev`` logged in to the loopback gateway (the current one), ``staging`` logged out."""
    user = gw.gateway.user(EMAIL)
    assert user is not None
    token, _ = gw.gateway.sessions.issue(
        user, device_id=str(uuid.uuid4()), device_name="probe", device_os="linux/x86_64", mfa_verified_at=None
    )
    directory = tmp_path / "config"
    directory.mkdir(mode=0o700)
    racks = {"dev": {"url": gw.url, "token": token, "email": EMAIL}, "staging": {"url": "https://staging.example.com"}}
    (directory / "config.json").write_text(json.dumps({"current": "dev", "gateways": racks}))
    (directory / "config.json").chmod(0o600)
    return directory


@pytest.mark.parametrize(
    ("args", "own_module"),
    [
        (["--version"], None),
        (["--help"], None),
        (["racks"], "rgw.cli.rack"),
        (["switch", "staging"], "rgw.cli.rack"),
        (["racks", "--help"], "rgw.cli.rack"),
        (["status", "--offline"], "rgw.cli.status"),
        (["token"], "rgw.cli.status"),
        (["completion", "bash"], "rgw.cli.completion"),
    ],
)
def test_a_local_command_imports_no_http_stack_no_event_loop_and_no_other_command(
    config: Path, tmp_path: Path, args: list[str], own_module: str | None
) -> None:
    done, modules = imported(config, tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert heavy(modules) == []
    assert command_modules(modules) == ([own_module] if own_module else [])


@pytest.mark.parametrize(
    ("words", "cword", "answer", "own_module"),
    [
        ("rack-gateway st", "1", "plain,status\n", None),
        ("rack-gateway switch st", "2", "plain,staging\n", "rgw.cli.rack"),
    ],
)
def test_a_tab_imports_nothing_it_does_not_complete(
    config: Path, tmp_path: Path, words: str, cword: str, answer: str, own_module: str | None
) -> None:
    tab = {"_RACK_GATEWAY_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword}
    done, modules = imported(config, tmp_path, env_extra=tab)
    assert (done.returncode, done.stdout) == (0, answer)
    assert heavy(modules) == []
    assert command_modules(modules) == ([own_module] if own_module else [])


def test_the_local_command_really_ran(config: Path, tmp_path: Path) -> None:
    """The probe is not vacuous: ``switch`` wrote the config, ``racks`` printed it."""
    done, _ = imported(config, tmp_path, "switch", "staging")
    assert done.stdout == "Switched to staging\n"
    assert json.loads((config / "config.json").read_text())["current"] == "staging"
    done, _ = imported(config, tmp_path, "racks")
    assert done.stdout.splitlines()[2].startswith("*  staging")


def test_a_gateway_command_loads_the_http_stack_and_only_its_own_command(
    config: Path, tmp_path: Path, gw: RunningGateway
) -> None:
    done, modules = imported(config, tmp_path, "test-auth")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Authenticated as {EMAIL}\n")
    assert {"httpx", "anyio", "asyncio", "rgw.client"} <= set(modules)  # the probe sees what a command loads
    assert command_modules(modules) == ["rgw.cli.auth"]
    assert "fido2" not in modules
    assert not [m for m in modules if m.startswith(("rgw.testing", "rgw.login"))]
