"""Decorators shared by the command modules: the ``App`` and the per-command credential options.

The seed document writes ``rack-gateway apps --api-token "rgw_token_..."``: the credential and rack
options work after the command as well as before it (``rack-gateway --api-token ... apps``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import asyncclick as click

from rgw.cli.app import DEFAULT_COMMAND_TIMEOUT, App

F = TypeVar("F", bound=Callable[..., Any])

pass_app = click.make_pass_decorator(App)


def _set(field: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            setattr(ctx.ensure_object(App), field, value)

    return store


def api_token_option(command: F) -> F:
    return click.option(
        "--api-token",
        metavar="TOKEN",
        expose_value=False,
        callback=_set("api_token_option"),
        help="API token instead of the stored session (default: RACK_GATEWAY_API_TOKEN).",
    )(command)


def rack_option(command: F) -> F:
    return click.option(
        "--rack",
        "-r",
        metavar="RACK",
        expose_value=False,
        callback=_set("rack_option"),
        help="Rack to use (default: RACK_GATEWAY_RACK, then the current rack).",
    )(command)


def _set_timeout(ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
    if value is not None:
        ctx.ensure_object(App).command_timeout = value


def timeout_option(command: F) -> F:
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        metavar="SECONDS",
        expose_value=False,
        callback=_set_timeout,
        help=f"Give up after this many seconds of retrying a flaky link (default {DEFAULT_COMMAND_TIMEOUT:g}).",
    )(command)


def target_options(command: F) -> F:
    """``--rack/-r``, ``--api-token`` and ``--timeout`` on a command that talks to a gateway."""
    return rack_option(api_token_option(timeout_option(command)))
