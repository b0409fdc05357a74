"""A click group whose commands are imported only when they run: the "lazy group" of click's
documentation ("Lazily Loading Subcommands").

Each command is registered by name with the ``module:attribute`` that defines it and its one-line
help.  ``get_command`` imports the module the first time the command is needed (to run it, to show
its own ``--help``, or to complete its options), gives it the global options and keeps it.
``rack-gateway --help`` and the completion of command names use the registered help lines, so they
import no command module at all; ``tests/unit/test_lazy.py`` checks that every registered line is
what the command's own docstring says.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import asyncclick as click
from asyncclick.utils import make_default_short_help

if TYPE_CHECKING:
    from asyncclick.shell_completion import CompletionItem


class LazyCommand:
    """Where a command lives (``rgw.cli.rack:racks``) and its one-line help for the group's listing.

    A plain class, not a dataclass: ``--version`` and ``--help`` should not pay for ``dataclasses``.
    """

    __slots__ = ("help", "target")

    def __init__(self, target: str, help: str) -> None:
        self.target = target
        self.help = help

    def __repr__(self) -> str:
        return f"LazyCommand({self.target!r}, {self.help!r})"

    def load(self) -> click.Command:
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class LazyGroup(click.Group):
    """A group that imports each command's module on first use (``lazy``: name -> ``LazyCommand``).

    ``prepare`` is applied to each command once it is loaded (the global options).
    """

    def __init__(
        self,
        *args: Any,
        lazy: Mapping[str, LazyCommand] | None = None,
        prepare: Callable[[click.Command], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self.prepare = prepare

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in self.lazy:
            command = self.lazy[cmd_name].load()
            if self.prepare is not None:
                self.prepare(command)
            self.commands[cmd_name] = command
        return command

    def listed_help(self, name: str, limit: int) -> str:
        """A command's line in the listing, without importing it (unless it is loaded already)."""
        command = self.commands.get(name)
        if command is not None:
            return command.get_short_help_str(limit)
        return make_default_short_help(self.lazy[name].help, limit)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing (same layout), from the registered help lines."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self.listed_help(name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names (with their help lines) and the group's options, importing no command."""
        from asyncclick.shell_completion import CompletionItem

        results = [
            CompletionItem(name, help=self.listed_help(name, 45))
            for name in self.list_commands(ctx)
            if name.startswith(incomplete)
        ]
        results.extend(click.Command.shell_complete(self, ctx, incomplete))
        return results

    async def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return await super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            # click suggests close matches from the commands loaded so far: offer every command.
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None
