"""``rack``, ``racks``, ``switch`` and ``apps``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncclick as click

from rgw.cli.app import App
from rgw.cli.options import complete_racks, pass_app, target_options
from rgw.cli.runner import on_event_loop
from rgw.cli.style import table, time_left
from rgw.config import ConfigData
from rgw.errors import NoRackError
from rgw.models import RackConfig, time_text
from rgw.targets import MAX_RACK_NAME, quoted, shell_word
from rgw.text import printable

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.command("rack")
@json_option
@target_options
@pass_app
@on_event_loop
async def rack(app: App, as_json: bool) -> None:
    """Show the current rack: name, provider, status, version, gateway URL, user."""
    async with app.connect() as (target, client):
        info = await client.info()
        system = await client.rack_system()
    user = info.get("user") if isinstance(info.get("user"), dict) else {}
    rack_info = info.get("rack") if isinstance(info.get("rack"), dict) else {}
    assert isinstance(user, dict)
    assert isinstance(rack_info, dict)
    result = {
        "rack": target.rack_name or rack_info.get("alias") or rack_info.get("name"),
        "name": system.get("name") or rack_info.get("name"),
        "provider": system.get("provider"),
        "region": system.get("region"),
        "status": system.get("status"),
        "version": system.get("version"),
        "gateway": target.url,
        "user": user.get("email"),
    }
    if as_json:
        app.echo_json(result)
        return
    rows = [
        ("Rack", result["rack"]),
        ("Name", result["name"]),
        ("Provider", result["provider"]),
        ("Region", result["region"]),
        ("Status", result["status"]),
        ("Version", result["version"]),
        ("Gateway", result["gateway"]),
        ("User", result["user"]),
    ]
    for label, value in rows:
        if value not in (None, ""):
            app.echo(f"{label + ':':<10}{value}")


@click.command("racks")
@json_option
@pass_app
async def racks(app: App, as_json: bool) -> None:
    """List configured racks (* marks the current one)."""
    data = await app.store.read(tokens=())
    current = data.current
    entries = data.racks()
    if as_json:
        app.echo_json(
            [
                {
                    "name": r.name,
                    "url": r.url,
                    "current": r.name == current,
                    "logged_in": r.logged_in,
                    "email": r.email,
                    "expires_at": time_text(r.expires_at),  # out of range: unknown
                    "rejected": r.rejected,
                }
                for r in entries
            ]
        )
        return
    if not entries:
        app.note("No racks configured. Please run: rack-gateway login <rack> <gateway-url>")
        return
    now = datetime.now(UTC)
    rows = [
        (
            "*" if r.name == current else "",
            printable(r.name, limit=40),
            printable(r.url),
            printable(r.email or "-"),
            session_state(r, now),
        )
        for r in entries
    ]
    for line in table(rows, ("", "NAME", "URL", "USER", "SESSION")):
        app.echo(line)


def session_state(rack: RackConfig, now: datetime) -> str:
    if not rack.logged_in:
        return "logged out"
    if rack.rejected:
        return printable(f"rejected ({rack.rejected}): log in again", limit=80)
    left = time_left(rack.expires_at, now)
    return f"logged in ({left})" if left else "logged in"


@click.command("switch")
@click.argument("name", metavar="RACK", shell_complete=complete_racks)
@pass_app
async def switch(app: App, name: str) -> None:
    """Make RACK the current rack."""

    def change(data: ConfigData) -> None:
        if data.rack(name) is None:
            known = ", ".join(printable(n) for n in data.rack_names()) or "none"
            shown = shell_word(name) if len(name) <= MAX_RACK_NAME else "<rack>"
            raise NoRackError(
                f"unknown rack {quoted(name)} (configured: {known})",
                hint=f"Run: rack-gateway login {shown} <gateway-url>",
            )
        data.current = name

    await app.store.update(change)
    app.echo(f"Switched to {printable(name)}")


@click.command("apps")
@json_option
@target_options
@pass_app
@on_event_loop
async def apps(app: App, as_json: bool) -> None:
    """List the rack's apps."""
    async with app.connect() as (_target, client):
        items = await client.apps()
    if as_json:
        app.echo_json(items)
        return
    if not items:
        app.note("No apps.")
        return

    def cell(item: dict[str, Any], key: str) -> str:
        value = item.get(key)
        return "-" if value in (None, "") else str(value)

    rows = [(cell(a, "name"), cell(a, "status"), cell(a, "generation"), cell(a, "release")) for a in items]
    for line in table(rows, ("APP", "STATUS", "GEN", "RELEASE")):
        app.echo(line)


COMMANDS = [rack, racks, switch, apps]
