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
    """Where a command lives (``rgw.cli.rack:racks``), its one-line help for the group's listing, the
    listing's section it is shown in, or ``section=None``: not listed (an old name kept working).

    A plain class, not a dataclass: ``--version`` and ``--help`` should not pay for ``dataclasses``.
    """

    __slots__ = ("help", "section", "target")

    def __init__(self, target: str, help: str, section: str | None = "Commands") -> None:
        self.target = target
        self.help = help
        self.section = section

    def __repr__(self) -> str:
        return f"LazyCommand({self.target!r}, {self.help!r}, section={self.section!r})"

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

    def listed(self) -> dict[str, list[str]]:
        """The listing's sections in the order of registration, each with its commands in that order."""
        sections: dict[str, list[str]] = {}
        for name, entry in self.lazy.items():
            if entry.section is not None:
                sections.setdefault(entry.section, []).append(name)
        for name, command in self.commands.items():
            if name not in self.lazy and not command.hidden:
                sections.setdefault("Commands", []).append(name)
        return sections

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing (same layout), from the registered help lines, one block per section;
        commands registered without a section (old names) work but are not listed."""
        sections = self.listed()
        names = [name for listed in sections.values() for name in listed]
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        for section, listed in sections.items():
            with formatter.section(section):
                formatter.write_dl([(name, self.listed_help(name, limit)) for name in listed])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names (with their help lines) and the group's options, importing no command."""
        from asyncclick.shell_completion import CompletionItem

        listed = sorted(name for names in self.listed().values() for name in names)
        matching = [name for name in listed if name.startswith(incomplete)]
        results = [CompletionItem(name, help=self.listed_help(name, 45)) for name in matching]
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
