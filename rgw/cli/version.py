"""``version``: this client's version and, for the current rack, its gateway's (``GET /api/v1/info``).

It never fails: without a rack, a session or an answer within ``GATEWAY_TIMEOUT`` seconds (the one
deadline of ``rgw.deadline``) the gateway's line says why in parentheses.  ``--version`` stays the
local, instant one (``rgw.cli``'s group option, which loads no command).
"""

from __future__ import annotations

from typing import Any

import asyncclick as click

from rgw import __version__
from rgw.cli.app import App
from rgw.cli.options import pass_app
from rgw.cli.runner import on_event_loop
from rgw.errors import AuthenticationError, RgwError

#: How long ``version`` waits for the gateway, retries included.
GATEWAY_TIMEOUT = 5.0
NOT_CONNECTED, NOT_LOGGED_IN, UNREACHABLE, OK = "not connected", "not logged in", "unreachable", "ok"


async def gateway_version(app: App) -> dict[str, Any]:
    """The current rack's name and URL, and its gateway's version where it says it (``gateway``: how it went)."""
    from rgw.deadline import within
    from rgw.text import printable

    found: dict[str, Any] = {"rack": None, "gateway_url": None, "gateway_version": None, "gateway_commit": None}
    try:
        target = await app.target()
    except AuthenticationError:  # no session for the selected rack, or no rack at all
        rack = await selected_rack(app)
        return found | {"rack": rack, "gateway": NOT_LOGGED_IN if rack else NOT_CONNECTED}
    except RgwError:
        return found | {"gateway": NOT_CONNECTED}
    found |= {"rack": target.rack_name, "gateway_url": target.url}
    info: dict[str, Any] | None = None
    try:
        with within(GATEWAY_TIMEOUT):
            async with app.command_client(
                target.url, target.token, insecure_http=target.insecure_http, announce_retries=False
            ) as client:
                info = await client.info()
    except AuthenticationError:
        return found | {"gateway": NOT_LOGGED_IN}
    except RgwError:  # no answer, one that is no info, or refused before asking (plain HTTP not opted in)
        return found | {"gateway": UNREACHABLE}
    if info is None:  # the deadline passed
        return found | {"gateway": UNREACHABLE}
    version = info.get("version")
    if isinstance(version, dict):
        number, commit = version.get("version"), version.get("commit_hash")
    else:
        number, commit = version, None
    return found | {
        "gateway": OK,
        "gateway_version": printable(number) if isinstance(number, str) and number else None,
        "gateway_commit": printable(commit) if isinstance(commit, str) and commit else None,
    }


async def selected_rack(app: App) -> str | None:
    """The rack a command would use (``-r``, ``RACK_GATEWAY_RACK``, the current one), if the config has it."""
    try:
        data = await app.store.read(tokens=())
        name = app.selection.rack_name(data)
    except RgwError:
        return None
    return name if name and data.rack(name) is not None else None


def gateway_line(found: dict[str, Any]) -> str:
    """``Gateway version: 1.2.3 (commit abc; rack dev, https://...)`` or ``Gateway version: (unreachable; ...)``."""
    from rgw.text import printable

    where = "; ".join(
        part
        for part in (
            f"rack {printable(found['rack'])}" if found["rack"] else "",
            printable(found["gateway_url"]) if found["gateway_url"] else "",
        )
        if part
    )
    if found["gateway"] != OK:
        return f"Gateway version: ({found['gateway']}{'; ' + where if where else ''})"
    commit = f"commit {found['gateway_commit']}" if found["gateway_commit"] else ""
    details = "; ".join(part for part in (commit, where) if part)
    number = found["gateway_version"] or "(not reported)"
    return f"Gateway version: {number}{f' ({details})' if details else ''}"


@click.command("version")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
@on_event_loop
async def version(app: App, as_json: bool) -> None:
    """Print the client version and the current rack's gateway version (never fails)."""
    found = await gateway_version(app)
    if as_json:
        app.echo_json({"cli_version": __version__, "client": "python", **found})
        return
    app.echo(f"CLI version: {__version__} (python)")
    app.echo(gateway_line(found))


COMMANDS = [version]
