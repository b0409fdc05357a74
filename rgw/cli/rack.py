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
from rgw.models import RackConfig, time_text
from rgw.targets import unknown_rack
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
                    "unusable": data.rack_problem(r.name),
                }
                for r in entries
            ]
        )
        return
    if not entries:
        app.note("No racks configured. Please run: rack-gateway login <rack> <gateway-url>")
        return
    now = datetime.now(UTC)
    states = [session_state(r, now, data.rack_problem(r.name)) for r in entries]
    rows = [
        (
            "*" if r.name == current else "",
            printable(r.name, limit=40),
            printable(r.url or "-"),
            printable(r.email or "-"),
            state,
        )
        for r, (state, _detail) in zip(entries, states, strict=True)
    ]
    lines = table(
        rows,
        ("", "NAME", "URL", "USER", "SESSION"),
        columns=app.columns(app.out),
        shrink=((3,), (2,), (1,)),  # the user first (status shows it), then the URL, the rack's name last
        details=[detail for _state, detail in states],
        detail_at=4,
    )
    for line in lines:
        app.echo_styled(line)


def session_state(rack: RackConfig, now: datetime, problem: str | None = None) -> tuple[str, str | None]:
    """The SESSION cell, and what goes on a line of its own under the rack (why it cannot be used)."""
    if problem is not None:
        return "unusable", printable(problem, limit=120)
    if not rack.logged_in:
        return "logged out", None
    if rack.rejected:
        return "rejected", printable(f"{rack.rejected}: log in again", limit=120)
    left = time_left(rack.expires_at, now)
    return (f"logged in ({left})" if left else "logged in"), None


@click.command("switch")
@click.argument("name", metavar="RACK", shell_complete=complete_racks)
@pass_app
async def switch(app: App, name: str) -> None:
    """Make RACK the current rack."""

    def change(data: ConfigData) -> None:
        if data.rack(name) is None:
            raise unknown_rack(name, data)
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
