"""The ``rack-gateway`` command line: parse, build collaborators, call the library, render.

This package is the only one that imports asyncclick or prints.  ``main`` is the one place that
turns errors into exit codes: an ``RgwError`` becomes ``Error: <message>`` plus its hint on stderr
and its exit code (README lists them); Ctrl-C exits 130; nothing a user can cause shows a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, TextIO

import asyncclick as click

from rgw import __version__
from rgw.cli.lazy import LazyCommand, LazyGroup
from rgw.cli.options import add_global_options, app_of, enable_verbose, global_options
from rgw.errors import EXIT_CODES, Interrupted, RgwError

if TYPE_CHECKING:
    from rgw.cli.app import App

#: Racks this run logged in to before a Ctrl-C (``run`` sets a list, a login command fills it; the
#: same list even where the command runs on an event loop of its own): the interruption then names
#: them instead of saying that nothing was changed.
LOGGED_IN_BEFORE_INTERRUPT: ContextVar[list[str] | None] = ContextVar("logged_in_before_interrupt", default=None)

HELPERS, DEVELOPMENT = "Helpers", "Development (the reference gateway)"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Every command: where it lives, its line in ``--help`` (``tests/unit/test_lazy.py`` keeps the lines
#: equal to the commands' docstrings) and the section that lists it: the seed's commands, then the
#: helpers, then the reference gateway's (``dev``; their old names work but are not listed).  Only
#: the module of the command that runs is imported.
COMMANDS = {
    "login": LazyCommand("rgw.cli.auth:login", "Log in to a rack gateway through your browser."),
    "logout": LazyCommand(
        "rgw.cli.auth:logout", "Revoke the session on the gateway and remove it locally (the rack stays configured)."
    ),
    "test-auth": LazyCommand(
        "rgw.cli.auth:test_auth", "Check that the current credentials work, and show who you are (or your MFA status)."
    ),
    "rack": LazyCommand(
        "rgw.cli.rack:rack", "Show the current rack: name, provider, status, version, gateway URL, user."
    ),
    "racks": LazyCommand("rgw.cli.rack:racks", "List configured racks (* marks the current one)."),
    "switch": LazyCommand("rgw.cli.rack:switch", "Make RACK the current rack."),
    "apps": LazyCommand("rgw.cli.rack:apps", "List the rack's apps."),
    "api-token": LazyCommand("rgw.cli.tokens:api_token", "Manage API tokens (list, get, create, delete)."),
    "status": LazyCommand(
        "rgw.cli.status:status",
        "Show every rack's session: user, whether the gateway accepts it now, time left, MFA state.",
        section=HELPERS,
    ),
    "token": LazyCommand(
        "rgw.cli.status:token",
        "Print the current credential (for other tools: rack-gateway token | ...).",
        section=HELPERS,
    ),
    "completion": LazyCommand(
        "rgw.cli.completion:completion",
        "Print the shell completion script for bash, zsh or fish (see the README for where it goes).",
        section=HELPERS,
    ),
    "version": LazyCommand(
        "rgw.cli.version:version",
        "Print the client version and the current rack's gateway version (never fails).",
        section=HELPERS,
    ),
    "dev": LazyCommand(
        "rgw.cli.development:dev",
        "Serve the reference gateway, run its demo, its admin actions.",
        section=DEVELOPMENT,
    ),
    # The old names of ``dev gateway``, ``dev demo`` and ``dev admin``: working, not listed.
    "dev-gateway": LazyCommand(
        "rgw.cli.dev:dev_gateway",
        "Serve the reference gateway (a stand-in for a deployed rack gateway) until Ctrl-C.",
        section=None,
    ),
    "demo": LazyCommand(
        "rgw.cli.dev:demo",
        "Run a complete login on a built-in reference gateway: login, test-auth, apps, rack, logout.",
        section=None,
    ),
    "admin": LazyCommand(
        "rgw.cli.admin:admin", "Administrator actions on a reference gateway (needs the admin role).", section=None
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    prepare=add_global_options,  # the Go CLI's persistent flags: after the command too
    context_settings=CONTEXT,
    epilog="Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
    params=global_options(),
)
@click.version_option(__version__, "--version", prog_name="rack-gateway", message="%(prog)s %(version)s")
@click.pass_context
async def cli(ctx: click.Context) -> None:
    """rack-gateway: log in to a rack gateway through your browser and use its racks."""
    app = app_of(ctx)  # the options gave it their values as they were parsed
    if app.environ.get("RACK_GATEWAY_DEBUG", "").strip() not in ("", "0"):
        enable_verbose(ctx)


def report(error: RgwError, stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> None:
    """``Error: <message>`` (red on a terminal that takes colour) and the hint, on stderr."""
    import os

    from rgw.cli.app import safe_lines
    from rgw.cli.style import BOLD_RED, paint
    from rgw.text import run_secrets, without_secrets

    out = stream if stream is not None else sys.stderr
    env = os.environ if environ is None else environ
    try:
        color = out.isatty() and env.get("TERM", "") != "dumb" and "NO_COLOR" not in env
    except (AttributeError, ValueError):
        color = False
    secrets = run_secrets()  # taken out where gateway text enters rgw; this is the last net
    print(f"{paint('Error:', BOLD_RED, color=color)} {safe_lines(without_secrets(error.message, secrets))}", file=out)
    if error.hint:
        print(safe_lines(without_secrets(error.hint, secrets)), file=out)


async def run(args: Sequence[str] | None = None, *, obj: App | None = None) -> int:
    """Run the CLI; returns the exit code.  ``main`` drives it without an event loop (a command that
    needs one starts it); on a running loop (tests, the demo) every command runs on that loop.

    ``obj`` replaces the ``App`` built from the options (its streams, browser, environment).
    """
    LOGGED_IN_BEFORE_INTERRUPT.set([])
    _start_secrets(obj)
    try:
        await cli.main(
            args=list(args) if args is not None else None,
            prog_name="rack-gateway",
            standalone_mode=False,
            obj=obj,
        )
    except RgwError as exc:
        report(exc, *_streams(obj))
        return exc.exit_code
    except click.exceptions.Abort:
        report(_interrupted(), *_streams(obj))
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
        report(first, *_streams(obj))
        return first.exit_code
    return 0


def _start_secrets(obj: App | None) -> None:
    """This run's secrets (``rgw.text.run_secrets``): the ``App``'s set, which every request a client
    sends adds to; the API token of the environment is one from the start (the options add theirs)."""
    import os

    from rgw.text import keep_secrets, start_run_secrets

    start_run_secrets(obj.secrets if obj is not None else set())
    environ = obj.environ if obj is not None else os.environ
    keep_secrets([environ.get("RACK_GATEWAY_API_TOKEN")])


def _interrupted() -> Interrupted:
    done = LOGGED_IN_BEFORE_INTERRUPT.get()
    if not done:
        return Interrupted("interrupted")
    from rgw.text import printable

    racks = ", ".join(printable(rack) for rack in done)
    return Interrupted(
        "interrupted",
        hint=f"Logged in before the interruption: {racks}. For the others, run the same command again with "
        "--expired-only (their logins in progress are taken up again).",
    )


def _streams(obj: App | None) -> tuple[TextIO | None, Mapping[str, str] | None]:
    return (obj.err, obj.environ) if obj is not None else (None, None)


def _first_leaf(group: BaseExceptionGroup[RgwError]) -> RgwError:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, RgwError)
    return exc


def main(args: Sequence[str] | None = None) -> None:
    """The console script: local commands run without an event loop, the others start one (runner)."""
    from rgw.cli.runner import drive

    try:
        code = drive(run(args))
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        code = Interrupted.exit_code
    sys.exit(code)
