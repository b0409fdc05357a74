"""The ``rack-gateway`` command line: parse, build collaborators, call the library, render.

This package is the only one that imports asyncclick or prints.  ``main`` is the one place that
turns errors into exit codes: an ``RgwError`` becomes ``Error: <message>`` plus its hint on stderr
and its exit code (README lists them); Ctrl-C exits 130; nothing a user can cause shows a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

import asyncclick as click

from rgw import __version__
from rgw.cli.app import App
from rgw.cli.options import add_global_options
from rgw.errors import EXIT_CODES, Interrupted, RgwError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT, epilog="Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()))
@click.option(
    "--rack", "-r", "rack", metavar="RACK", help="Rack to use (default: RACK_GATEWAY_RACK, then the current rack)."
)
@click.option(
    "--config",
    "config",
    metavar="DIR",
    help="Config directory (default: GATEWAY_CLI_CONFIG_DIR, then ~/.config/rack-gateway).",
)
@click.option(
    "--api-token",
    "api_token",
    metavar="TOKEN",
    help="API token instead of the stored session (default: RACK_GATEWAY_API_TOKEN).",
)
@click.option(
    "--mfa-method",
    "mfa_method",
    type=click.Choice(["totp", "webauthn", "backup_code"]),
    help="MFA method at login and for step-up (default: the gateway's preferred one).",
)
@click.option(
    "--mfa-code",
    "mfa_code",
    metavar="CODE",
    help="A TOTP or backup code, used once without prompting (for runs without a terminal).",
)
@click.version_option(__version__, "--version", prog_name="rack-gateway", message="%(prog)s %(version)s")
@click.pass_context
async def cli(
    ctx: click.Context,
    rack: str | None,
    config: str | None,
    api_token: str | None,
    mfa_method: str | None,
    mfa_code: str | None,
) -> None:
    """rack-gateway: log in to a rack gateway through your browser and use its racks."""
    if isinstance(ctx.obj, App):  # an App handed in by run(obj=...): the demo and tests
        ctx.obj.rack_option = rack or ctx.obj.rack_option
        ctx.obj.api_token_option = api_token or ctx.obj.api_token_option
        if config:
            ctx.obj.use_config_dir(config)
    else:
        ctx.obj = App.create(config=config, rack=rack, api_token=api_token)
    ctx.obj.mfa_method = mfa_method or ctx.obj.mfa_method
    ctx.obj.mfa_code = mfa_code or ctx.obj.mfa_code


def _register() -> None:
    from rgw.cli import admin, auth, dev, rack, tokens

    for module in (auth, rack, tokens, admin, dev):
        for command in module.COMMANDS:
            add_global_options(command)  # the Go CLI's persistent flags: after the command too
            cli.add_command(command)


_register()


def report(error: RgwError, stream: TextIO | None = None) -> None:
    """``Error: <message>`` (red on a terminal that takes colour) and the hint, on stderr."""
    import os

    from rgw.cli.app import safe_lines

    out = stream if stream is not None else sys.stderr
    try:
        color = out.isatty() and os.environ.get("TERM", "") != "dumb" and "NO_COLOR" not in os.environ
    except (AttributeError, ValueError):
        color = False
    label = "\x1b[1;31mError:\x1b[0m" if color else "Error:"
    print(f"{label} {safe_lines(error.message)}", file=out)
    if error.hint:
        print(safe_lines(error.hint), file=out)


async def run(args: Sequence[str] | None = None, *, obj: App | None = None) -> int:
    """Run the CLI inside an existing event loop; returns the exit code.

    ``obj`` replaces the ``App`` built from the options (its streams, browser, environment).
    """
    try:
        await cli.main(
            args=list(args) if args is not None else None,
            prog_name="rack-gateway",
            standalone_mode=False,
            obj=obj,
        )
    except RgwError as exc:
        report(exc, obj.err if obj is not None else None)
        return exc.exit_code
    except click.exceptions.Abort:
        report(Interrupted("interrupted"))
        return Interrupted.exit_code
    except click.ClickException as exc:
        exc.show(obj.err if obj is not None else None)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BaseExceptionGroup as group:
        errors = group.subgroup(RgwError)
        if errors is None or group.split(RgwError)[1] is not None:
            raise
        first = _first_leaf(errors)
        report(first, obj.err if obj is not None else None)
        return first.exit_code
    return 0


def _first_leaf(group: BaseExceptionGroup[RgwError]) -> RgwError:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, RgwError)
    return exc


def main(args: Sequence[str] | None = None) -> None:
    import anyio

    try:
        code = anyio.run(run, args)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        code = Interrupted.exit_code
    sys.exit(code)
