"""Options shared by the commands: the global ones (anywhere on the line), ``--timeout``, ``pass_app``.

The Go CLI's global flags are cobra persistent flags: they work before or after the command
(``rack-gateway api-token create --name ci --role viewer --mfa-code 123456``, and the seed's
``rack-gateway apps --api-token "rgw_token_..."``).  ``add_global_options`` gives every command and
group the same five (``--rack/-r``, ``--config``, ``--api-token``, ``--mfa-method``,
``--mfa-code``); each stores its value on the ``App``, so a value after the command overrides one
before it, and ``--help`` of every command lists them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import asyncclick as click

from rgw.cli.app import DEFAULT_COMMAND_TIMEOUT, App

F = TypeVar("F", bound=Callable[..., Any])

pass_app = click.make_pass_decorator(App)

MFA_METHODS = ("totp", "webauthn", "backup_code")


def _set(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value:
            setattr(ctx.ensure_object(App), field, value)

    return store


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(App).use_config_dir(value)


def global_options() -> list[click.Option]:
    """The five global options, as new ``click.Option`` objects (one set per command)."""
    return [
        click.Option(
            ["--rack", "-r", "global_rack"],
            metavar="RACK",
            expose_value=False,
            callback=_set("rack_option"),
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
            callback=_set("api_token_option"),
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
            callback=_set("mfa_code"),
            help="A TOTP or backup code, used once without prompting (for runs without a terminal).",
        ),
    ]


def add_global_options(command: click.Command) -> None:
    """Give ``command`` (and, for a group, every subcommand) the global options it lacks."""
    taken = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for option in global_options():
        if not taken.intersection(option.opts):
            command.params.append(option)
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
        ctx.ensure_object(App).command_timeout = value


def timeout_option(command: F) -> F:
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
