"""Options shared by the commands: the global ones (anywhere on the line), ``--timeout``, ``pass_app``.

The Go CLI's global flags are cobra persistent flags: they work before or after the command
(``rack-gateway api-token create --name ci --role viewer --mfa-code 123456``, and the seed's
``rack-gateway apps --api-token "rgw_token_..."``).  ``global_options`` is their one definition:
the group takes them, and ``add_global_options`` gives every command the same six (``--rack/-r``,
``--config``, ``--api-token``, ``--mfa-method``, ``--mfa-code``, ``-v/--verbose``).  Each hands its
value to the run's ``App`` (``App.given``) as it is parsed, so a value after the command overrides
one before it.  ``rack-gateway --help`` lists them once, under the group; a command's own ``--help``
does not repeat them (hidden there, still taken) and says in one line where they are.

This module is on the start-up path of every command (``rgw.cli`` imports it), so it imports the
``App`` only when an option is used: ``--help`` and ``--version`` never load it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import asyncclick as click

from rgw.mfa_methods import MFA_METHODS

if TYPE_CHECKING:
    from asyncclick.shell_completion import CompletionItem

    from rgw.cli.app import App

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


def app_of(ctx: click.Context) -> App:
    """The ``App`` of this run (made from the environment when nothing made one yet).

    One made here holds the run's secrets (``rgw.text.run_secrets``), as one handed to ``rgw.cli.run`` does.
    """
    from rgw.cli.app import App

    app = ctx.find_object(App)
    if app is None:
        from rgw.text import run_secrets

        app = ctx.obj = App(secrets=run_secrets())
    return app


def pass_app(function: Callable[Concatenate[App, P], Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Call the command with the run's ``App`` first (click's ``make_pass_decorator``, imported late)."""

    @functools.wraps(function)
    async def with_app(*args: P.args, **kwargs: P.kwargs) -> R:
        return await function(app_of(click.get_current_context()), *args, **kwargs)

    return with_app


def _set(field: str, *, secret: bool = False) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value:
            app_of(ctx).given(**{field: value})
            if secret:  # no gateway's text may show it (``rgw.text.run_secrets``)
                from rgw.text import keep_secrets

                keep_secrets([value])

    return store


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--config``: applied at once, so that completing a rack name later on the line (which never
    runs a command's callback) reads the right config."""
    if value:
        from pathlib import Path  # not at start-up: --help and --version never need it

        app_of(ctx).given(config_dir=Path(value))


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        enable_verbose(ctx)


def enable_verbose(ctx: click.Context) -> None:
    """``-v`` / ``RACK_GATEWAY_DEBUG=1``: the library's debug log on stderr, until the run ends."""
    app = app_of(ctx)
    if app.start_verbose():
        ctx.find_root().call_on_close(app.stop_verbose)


def complete_racks(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion of a rack name: the racks in the config (``--config`` on the line is honoured).

    Only plain names (``rgw.text.is_plain_name``, the only ones ``login`` gives a new rack) are offered:
    a shell puts a completion on the command line as it is, so another tool's ``prod$(cmd)`` would
    run when the line does, and a line break or comma in a name would be read as a completion record
    of its own.  Such a rack still works when typed (quoted); it is just not offered.
    """
    from asyncclick.shell_completion import CompletionItem

    from rgw.config import rack_names_now
    from rgw.text import is_plain_name

    app = app_of(ctx)
    names = rack_names_now(app.config_dir)
    return [CompletionItem(name) for name in names if name.startswith(incomplete) and is_plain_name(name)]


#: The last line of every command's ``--help``: its global options are taken, not repeated there.
GLOBAL_EPILOG = (
    "Global options (-r/--rack, --config, --api-token, --mfa-method, --mfa-code, -v): see rack-gateway --help."
)


def global_options(*, hidden: bool = False) -> list[click.Option]:
    """The global options, as new ``click.Option`` objects (the group's, shown; one hidden set per command)."""
    options = [
        click.Option(
            ["--rack", "-r", "global_rack"],
            metavar="RACK",
            expose_value=False,
            callback=_set("rack"),
            shell_complete=complete_racks,
            help="Rack to use (default: RACK_GATEWAY_RACK, then the current rack).",
        ),
        click.Option(
            ["--config", "global_config"],
            metavar="DIR",
            expose_value=False,
            callback=_set_config,
            help="Config directory (default: GATEWAY_CLI_CONFIG_DIR, then ~/.config/rack-gateway).",
        ),
        click.Option(
            ["--api-token", "global_api_token"],
            metavar="TOKEN",
            expose_value=False,
            callback=_set("api_token", secret=True),
            help="API token instead of the stored session (default: RACK_GATEWAY_API_TOKEN).",
        ),
        click.Option(
            ["--mfa-method", "global_mfa_method"],
            type=click.Choice(MFA_METHODS),
            expose_value=False,
            callback=_set("mfa_method"),
            help="MFA method at login and for step-up (default: the gateway's preferred one).",
        ),
        click.Option(
            ["--mfa-code", "global_mfa_code"],
            metavar="CODE",
            expose_value=False,
            callback=_set("mfa_code", secret=True),
            help="A TOTP or backup code, used once without prompting (for runs without a terminal).",
        ),
        click.Option(
            ["--verbose", "-v", "global_verbose"],
            is_flag=True,
            expose_value=False,
            callback=_set_verbose,
            help="Show every request, retry, and wait for a lock or the request budget on stderr "
            "(RACK_GATEWAY_DEBUG=1).",
        ),
    ]
    for option in options:
        option.hidden = hidden
    return options


def add_global_options(command: click.Command) -> None:
    """Give ``command`` (and, for a group, every subcommand) the global options it lacks, hidden from
    its ``--help``, which says where they are instead (``GLOBAL_EPILOG``)."""
    taken = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for option in global_options(hidden=True):
        if not taken.intersection(option.opts):
            command.params.append(option)
    if not (command.epilog or "").endswith(GLOBAL_EPILOG):
        command.epilog = f"{command.epilog}\n\n{GLOBAL_EPILOG}" if command.epilog else GLOBAL_EPILOG
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_global_options(sub)


class Seconds(click.FloatRange):
    """A number of seconds from ``min`` on: finite (``nan`` and ``inf`` pass a plain FloatRange)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a number of seconds.", param, ctx)
        return seconds


def _set_timeout(ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
    if value is not None:
        app_of(ctx).given(timeout=value)


def timeout_option(command: F) -> F:
    from rgw.cli.app import DEFAULT_COMMAND_TIMEOUT

    return click.option(
        "--timeout",
        type=Seconds(min=0.1),
        metavar="SECONDS",
        expose_value=False,
        callback=_set_timeout,
        help=f"Give up after this many seconds of retrying a flaky link (default {DEFAULT_COMMAND_TIMEOUT:g}).",
    )(command)


def target_options(command: F) -> F:
    """What a command that talks to a gateway takes besides the global options: ``--timeout``."""
    return timeout_option(command)
