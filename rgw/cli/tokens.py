"""``api-token list|get|create|delete``: API tokens for CI/CD and automation.

The deployed gateway's shapes (PROTOCOL.md, "API token records"): ``/api-tokens/permissions``
lists ``roles`` as objects with their ``permissions``; ``--role R`` is expanded here into R's
permissions (the gateway is never sent ``role``).  A token record names its creator in
``created_by_email``; an unknown id is ``200 null`` (or ``404`` for a non-UUID): "not found".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncclick as click

from rgw.cli.app import App
from rgw.cli.options import pass_app, target_options
from rgw.cli.runner import on_event_loop
from rgw.cli.style import table, when
from rgw.errors import GatewayError, RgwError, UsageError
from rgw.text import is_token, printable


@click.group("api-token")
async def api_token() -> None:
    """Manage API tokens (list, get, create, delete)."""


def _cell(token: Mapping[str, Any], key: str) -> str:
    value = token.get(key)
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value in (None, "") else str(value)


def _public_id(token: Mapping[str, Any]) -> str:
    return _cell(token, "public_id") if token.get("public_id") else _cell(token, "id")


def _owner(token: Mapping[str, Any]) -> str:
    for key in ("created_by_email", "user_email", "created_by_name"):
        if token.get(key):
            return str(token[key])
    return "-"


def moment(value: Any) -> str:
    """``2026-12-07 09:35 UTC (5 min ago)``: the date, and how long ago (or until) when within a week."""
    from rgw.models import parse_time

    parsed = parse_time(value)
    if parsed is None:
        return "-" if value in (None, "") else "unknown"
    now = datetime.now(UTC)
    relative = when(value, now)
    stamp = parsed.strftime("%Y-%m-%d %H:%M UTC")
    return stamp if relative == stamp else f"{stamp} ({relative})"


def roles_of(catalogue: Mapping[str, Any]) -> dict[str, list[str]]:
    """Role name -> permissions, from the deployed list of role objects (or a plain mapping)."""
    roles = catalogue.get("roles")
    found: dict[str, list[str]] = {}
    if isinstance(roles, list):
        for role in roles:
            if isinstance(role, Mapping) and isinstance(role.get("name"), str):
                perms = role.get("permissions")
                found[role["name"]] = [str(p) for p in perms] if isinstance(perms, list) else []
    elif isinstance(roles, Mapping):
        for name, perms in roles.items():
            found[str(name)] = [str(p) for p in perms] if isinstance(perms, list) else []
    return found


def summarize(permissions: Any, roles: Mapping[str, list[str]]) -> str:
    """The role whose permissions these are exactly, else how many there are."""
    perms = sorted({str(p) for p in permissions}) if isinstance(permissions, list) else []
    for name, role_perms in roles.items():
        if role_perms and sorted(set(role_perms)) == perms:
            return f"role {name}"
    return f"{len(perms)} permission{'s' if len(perms) != 1 else ''}"


@api_token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (with every permission).")
@target_options
@pass_app
@on_event_loop
async def list_tokens(app: App, as_json: bool) -> None:
    """List API tokens."""
    async with app.connect() as (_target, client):
        tokens = await client.list_api_tokens()
        roles: dict[str, list[str]] = {}
        if tokens and not as_json:
            try:
                roles = roles_of(await client.api_token_permissions())
            except RgwError:
                roles = {}  # the summary falls back to a count
    if as_json:
        app.echo_json(tokens)
        return
    if not tokens:
        app.note("No API tokens.")
        return
    now = datetime.now(UTC)
    rows = [
        (
            printable(_cell(t, "name")),
            printable(_owner(t)),
            printable(summarize(t.get("permissions"), roles)),
            when(t.get("last_used_at"), now) if t.get("last_used_at") else "never",
        )
        for t in tokens
    ]
    # The ID (36 characters, needed whole for get/delete) on a line of its own under its token.
    ids = [f"  ID {printable(_public_id(t))}" for t in tokens]
    lines = table(
        rows,
        ("NAME", "USER", "PERMISSIONS", "LAST USED"),
        columns=app.columns(app.out),
        shrink=((0, 1, 2),),
        details=ids,
    )
    for line in lines:
        app.echo_styled(line)


@api_token.command("get")
@click.argument("public_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@target_options
@pass_app
@on_event_loop
async def get_token(app: App, public_id: str, as_json: bool) -> None:
    """Show one API token."""
    async with app.connect() as (_target, client):
        token = await client.get_api_token(public_id)
    if as_json:
        app.echo_json(token)
        return
    fields = [
        ("ID", _public_id(token)),
        ("Name", _cell(token, "name")),
        ("Created by", _owner(token)),
        ("Permissions", _cell(token, "permissions")),
        ("Created", moment(token.get("created_at"))),
        ("Last used", moment(token.get("last_used_at")) if token.get("last_used_at") else "never"),
        ("Expires", moment(token.get("expires_at")) if token.get("expires_at") else "never"),
    ]
    for label, value in fields:
        app.echo(f"{label + ':':<13}{printable(value)}")


@api_token.command("create")
@click.option("--name", required=True, help="A name for the token.")
@click.option("--role", help="Give the token a role's permissions (e.g. viewer, deployer, cicd).")
@click.option("--permission", "permissions", multiple=True, metavar="PERM", help="A permission; repeatable.")
@click.option("--user", "user_email", metavar="EMAIL", help="Owner of the token (admins only).")
@click.option(
    "--output",
    type=click.Choice(["text", "token", "json"]),
    default="text",
    show_default=True,
    help="token: print only the token, for scripts.",
)
@target_options
@pass_app
@on_event_loop
async def create_token(
    app: App, name: str, role: str | None, permissions: tuple[str, ...], user_email: str | None, output: str
) -> None:
    """Create an API token; the token is shown once."""
    if not role and not permissions:
        raise UsageError("give the token --role ROLE or at least one --permission PERM")
    async with app.connect() as (_target, client):
        perms = list(permissions)
        if role:
            roles = roles_of(await client.api_token_permissions())
            if role not in roles:
                known = ", ".join(sorted(roles)) or "none"
                raise UsageError(
                    f"unknown role {role!r} (the gateway knows: {printable(known)})",
                    hint="Use one of the gateway's roles, or give --permission PERM.",
                )
            perms = sorted({*perms, *roles[role]})
        body: dict[str, Any] = {"name": name, "permissions": perms}
        if user_email:
            body["user_email"] = user_email
        created = await client.create_api_token(body)
    token = created.get("token")
    if not is_token(token):
        raise GatewayError(
            "the gateway's answer has no usable token (missing, or not printable ASCII without spaces)",
            hint="Run rack-gateway api-token list: the token may have been created; delete it if so.",
        )
    if output == "token":
        app.echo(str(token))
        return
    if output == "json":
        app.echo_json(created)
        return
    details = created.get("api_token") if isinstance(created.get("api_token"), dict) else created
    assert isinstance(details, dict)
    app.echo(f"Created API token {printable(name)} ({printable(_public_id(details))})")
    app.echo(f"Permissions: {printable(', '.join(perms))}")
    app.echo(f"Token: {token}")
    app.note("Store it now: it will not be shown again.")


@api_token.command("delete")
@click.argument("public_id", metavar="ID")
@target_options
@pass_app
@on_event_loop
async def delete_token(app: App, public_id: str) -> None:
    """Delete (revoke) an API token."""
    async with app.connect() as (_target, client):
        await client.delete_api_token(public_id)
    app.echo(f"Deleted API token {printable(public_id)}")


COMMANDS = [api_token]
