"""Shell completion: the scripts ``completion bash|zsh|fish`` prints, and the answers to a Tab.

The answers are asked of a real ``rack-gateway`` process as each shell's script asks them (the
``_RACK_GATEWAY_COMPLETE`` protocol); bash, which this machine has, also runs its script for real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from asyncclick.shell_completion import get_completion_class

from rgw.cli import cli as root_command
from tests.integration.conftest import Cli

BIN = Path(sys.executable).parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir(mode=0o700)
    racks = {
        "production": {"url": "https://gw.example.com"},
        "staging": {"url": "https://stg.example.com"},
        "eu-west": {"url": "https://eu.example.com"},
    }
    (directory / "config.json").write_text(json.dumps({"current": "staging", "gateways": racks}))
    (directory / "config.json").chmod(0o600)
    return directory


def env_for(config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_", "_RACK"))}
    env["GATEWAY_CLI_CONFIG_DIR"] = str(config)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def answer(config: Path, shell: str, words: str, cword: str) -> str:
    """What ``rack-gateway`` answers a ``shell`` asking to complete ``words``."""
    done = subprocess.run(
        [sys.executable, "-m", "rgw"],
        env=env_for(config, _RACK_GATEWAY_COMPLETE=f"{shell}_complete", COMP_WORDS=words, COMP_CWORD=cword),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return done.stdout


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("shell", "registers"),
    [
        ("bash", "    complete -o nosort -F _rack_gateway_completion rack-gateway\n"),
        ("zsh", "    compdef _rack_gateway_completion rack-gateway\n"),
        ("fish", 'complete --no-files --command rack-gateway --arguments "(_rack_gateway_completion)";\n'),
    ],
)
async def test_completion_prints_clicks_script_for_the_shell(cli: Cli, shell: str, registers: str) -> None:
    result = await cli("completion", shell)
    assert (result.code, result.err) == (0, "")
    complete = get_completion_class(shell)
    assert complete is not None
    expected = complete(root_command, {}, "rack-gateway", "_RACK_GATEWAY_COMPLETE").source()
    assert result.out == expected if expected.endswith("\n") else expected + "\n"
    assert registers in result.out
    assert "_RACK_GATEWAY_COMPLETE=" + shell + "_complete" in result.out
    if shell == "zsh":
        assert result.out.startswith("#compdef rack-gateway\n")


@pytest.mark.anyio
async def test_completion_of_an_unknown_shell_is_a_usage_error(cli: Cli) -> None:
    result = await cli("completion", "tcsh")
    assert (result.code, result.out) == (2, "")
    assert result.err.splitlines()[-1] == (
        "Error: Invalid value for '{bash|zsh|fish}': 'tcsh' is not one of 'bash', 'zsh', 'fish'."
    )


def test_bash_completes_commands_options_and_rack_names(config: Path) -> None:
    assert answer(config, "bash", "rack-gateway sw", "1") == "plain,switch\n"
    assert answer(config, "bash", "rack-gateway st", "1") == "plain,status\n"
    assert answer(config, "bash", "rack-gateway switch ", "2") == "plain,eu-west\nplain,production\nplain,staging\n"
    assert answer(config, "bash", "rack-gateway switch pr", "2") == "plain,production\n"
    assert answer(config, "bash", "rack-gateway --rack s", "2") == "plain,staging\n"
    assert answer(config, "bash", "rack-gateway apps -r e", "3") == "plain,eu-west\n"
    assert answer(config, "bash", "rack-gateway login --rack ", "3") == (
        "plain,eu-west\nplain,production\nplain,staging\n"
    )
    assert answer(config, "bash", "rack-gateway status --of", "2") == "plain,--offline\n"
    assert answer(config, "bash", "rack-gateway completion ", "2") == "plain,bash\nplain,zsh\nplain,fish\n"
    assert answer(config, "bash", "rack-gateway api-token d", "2") == "plain,delete\n"


def test_completion_reads_the_config_named_on_the_line(config: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    (other / "config.json").write_text(json.dumps({"gateways": {"sandbox": {"url": "https://sb.example.com"}}}))
    (other / "config.json").chmod(0o600)
    assert answer(config, "bash", f"rack-gateway --config {other} switch ", "4") == "plain,sandbox\n"
    assert answer(config, "bash", "rack-gateway --config /nonexistent switch ", "4") == "\n"  # nothing, never an error


def test_zsh_and_fish_answers_carry_the_help_lines(config: Path) -> None:
    assert answer(config, "zsh", "rack-gateway sw", "1") == "plain\nswitch\nMake RACK the current rack.\n"
    assert (
        answer(config, "zsh", "rack-gateway switch ", "2")
        == "plain\neu-west\n_\nplain\nproduction\n_\nplain\nstaging\n_\n"
    )
    assert answer(config, "fish", "rack-gateway sw", "sw") == "plain,switch\tMake RACK the current rack.\n"
    assert answer(config, "fish", "rack-gateway switch st", "st") == "plain,staging\n"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_really_completes_in_bash(config: Path, tmp_path: Path) -> None:
    script = tmp_path / "rack-gateway.bash"
    done = subprocess.run(
        [sys.executable, "-m", "rgw", "completion", "bash"],
        env=env_for(config),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    script.write_text(done.stdout)
    run = (
        f"source {script}\n"
        "complete -p rack-gateway\n"
        "COMP_WORDS=(rack-gateway switch pro); COMP_CWORD=2; _rack_gateway_completion rack-gateway\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    shell = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", run],
        env=env_for(config),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (shell.returncode, shell.stderr) == (0, "")
    assert shell.stdout == "complete -o nosort -F _rack_gateway_completion rack-gateway\nproduction\n"


# -- issue 20, item 11: rack names another tool wrote never reach the command line raw ---------------

#: Names a config.json written by another tool may hold: a command substitution, a line break that
#: would be read as a completion record of its own, a glob, a space, a comma (fish's field separator).
HOSTILE_NAMES = ("prod$(touch${IFS}MARKER)", "prod\nfile,/etc", "prod*", "prod x", "prod,b", "-prod")


@pytest.fixture
def hostile_config(tmp_path: Path) -> tuple[Path, Path]:
    """A config with hostile rack names next to plain ones; the file a command substitution would make."""
    marker = tmp_path / "ran"
    directory = tmp_path / "hostile"
    directory.mkdir(mode=0o700)
    racks = {name.replace("MARKER", str(marker)): {"url": "https://gw.example.com"} for name in HOSTILE_NAMES}
    racks["production"] = {"url": "https://gw.example.com"}
    (directory / "config.json").write_text(json.dumps({"gateways": racks}))
    (directory / "config.json").chmod(0o600)
    return directory, marker


def test_completion_offers_only_rack_names_every_shell_reads_as_one_plain_word(
    hostile_config: tuple[Path, Path],
) -> None:
    config, _marker = hostile_config
    assert answer(config, "bash", "rack-gateway switch ", "2") == "plain,production\n"
    assert answer(config, "bash", "rack-gateway --rack pr", "2") == "plain,production\n"
    assert answer(config, "zsh", "rack-gateway switch pr", "2") == "plain\nproduction\n_\n"
    assert answer(config, "fish", "rack-gateway switch pr", "pr") == "plain,production\n"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_completing_in_bash_runs_nothing_a_rack_name_holds(hostile_config: tuple[Path, Path], tmp_path: Path) -> None:
    config, marker = hostile_config
    script = tmp_path / "rack-gateway.bash"
    done = subprocess.run(
        [sys.executable, "-m", "rgw", "completion", "bash"],
        env=env_for(config),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    script.write_text(done.stdout)
    # Complete `switch pr`, then put each completion on a command line as bash would and run it.
    run = (
        f"source {script}\n"
        "COMP_WORDS=(rack-gateway switch pr); COMP_CWORD=2; _rack_gateway_completion rack-gateway\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
        'for word in "${COMPREPLY[@]}"; do eval "true $word"; done\n'
    )
    shell = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", run],
        env=env_for(config),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (shell.returncode, shell.stderr) == (0, "")
    assert shell.stdout == "production\n"
    assert not marker.exists(), "a rack name's command substitution ran"
