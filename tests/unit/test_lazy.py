"""The lazy command group and the loop-free runner."""

from __future__ import annotations

import asyncclick as click
import pytest
from asyncclick.utils import make_default_short_help

from rgw.aio import in_event_loop
from rgw.cli import COMMANDS, cli
from rgw.cli.development import DEV_COMMANDS
from rgw.cli.lazy import LazyGroup
from rgw.cli.runner import NeedsEventLoop, drive, on_event_loop


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_help_line_is_the_commands_own(name: str) -> None:
    command = COMMANDS[name].load()
    assert command.name == name
    assert command.help is not None
    first_paragraph = command.help.split("\n\n")[0].replace("\n", " ").strip()
    assert COMMANDS[name].help == first_paragraph
    for limit in (45, 200):
        assert make_default_short_help(COMMANDS[name].help, limit) == command.get_short_help_str(limit)


@pytest.mark.parametrize("name", sorted(DEV_COMMANDS))
def test_every_dev_help_line_is_the_commands_own(name: str) -> None:
    command = DEV_COMMANDS[name].load()
    assert command.help is not None
    assert DEV_COMMANDS[name].help == command.help.split("\n\n")[0].replace("\n", " ").strip()


def test_the_group_lists_every_command_and_loads_each_once() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    first = cli.get_command(ctx, "racks")
    assert first is not None
    assert cli.get_command(ctx, "racks") is first
    assert {"--rack", "-v"} <= {opt for p in first.params for opt in getattr(p, "opts", [])}  # global options
    assert cli.get_command(ctx, "no-such-command") is None


@pytest.mark.anyio
async def test_a_typo_is_matched_against_commands_not_loaded_yet() -> None:
    group = LazyGroup("rack-gateway", lazy=COMMANDS)  # nothing loaded yet
    ctx = click.Context(group)
    with pytest.raises(click.exceptions.NoSuchCommand) as caught:
        await group.resolve_command(ctx, ["swich"])
    assert caught.value.format_message() == "No such command 'swich'. Did you mean 'switch'?"
    assert group.commands == {}


def test_drive_runs_a_coroutine_that_needs_no_loop() -> None:
    async def pure() -> int:
        assert not in_event_loop()
        return 42

    assert drive(pure()) == 42


def test_drive_refuses_a_coroutine_that_waits_on_a_loop() -> None:
    class Future:
        def __await__(self):  # type: ignore[no-untyped-def]
            yield "a loop's future"

    async def waits() -> None:
        await Future()

    with pytest.raises(NeedsEventLoop):
        drive(waits())


def test_on_event_loop_starts_a_loop_when_there_is_none() -> None:
    @on_event_loop
    async def body(value: int) -> tuple[bool, int]:
        import anyio

        await anyio.sleep(0)  # needs a real loop
        return in_event_loop(), value

    async def command() -> tuple[bool, int]:
        return await body(7)

    assert drive(command()) == (True, 7)


@pytest.mark.anyio
async def test_on_event_loop_runs_inline_on_a_running_loop() -> None:
    import anyio

    @on_event_loop
    async def body() -> object:
        await anyio.sleep(0)
        return anyio.get_current_task().id

    assert await body() == anyio.get_current_task().id  # the same task: no second loop
