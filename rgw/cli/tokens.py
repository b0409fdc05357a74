"""``api-token list|get|create|delete``: API tokens for CI/CD and automation."""

from __future__ import annotations

from typing import Any

import asyncclick as click

from rgw.cli.app import App
from rgw.cli.options import pass_app, target_options
from rgw.cli.rack import table
from rgw.errors import UsageError


@click.group("api-token")
async def api_token() -> None:
    """Manage API tokens (list, get, create, delete)."""


def _cell(token: dict[str, Any], key: str) -> str:
    value = token.get(key)
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value in (None, "") else str(value)


def _public_id(token: dict[str, Any]) -> str:
    return _cell(token, "public_id") if token.get("public_id") else _cell(token, "id")


@api_token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@target_options
@pass_app
async def list_tokens(app: App, as_json: bool) -> None:
    """List API tokens."""
    async with app.connect() as (_target, client):
        tokens = await client.list_api_tokens()
    if as_json:
        app.echo_json(tokens)
        return
    if not tokens:
        app.note("No API tokens.")
        return
    rows = [
        (_public_id(t), _cell(t, "name"), _cell(t, "user_email"), _cell(t, "permissions"), _cell(t, "last_used_at"))
        for t in tokens
    ]
    for line in table(rows, ("ID", "NAME", "USER", "PERMISSIONS", "LAST USED")):
        app.echo(line)


@api_token.command("get")
@click.argument("public_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@target_options
@pass_app
async def get_token(app: App, public_id: str, as_json: bool) -> None:
    """Show one API token."""
    async with app.connect() as (_target, client):
        token = await client.get_api_token(public_id)
    if as_json:
        app.echo_json(token)
        return
    for key in ("public_id", "name", "user_email", "permissions", "created_at", "last_used_at", "expires_at"):
        if key in token:
            app.echo(f"{key.replace('_', ' ').capitalize() + ':':<14}{_cell(token, key)}")


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
async def create_token(
    app: App, name: str, role: str | None, permissions: tuple[str, ...], user_email: str | None, output: str
) -> None:
    """Create an API token; the token is shown once."""
    if not role and not permissions:
        raise UsageError("give the token --role ROLE or at least one --permission PERM")
    async with app.connect() as (_target, client):
        perms = list(permissions)
        if role:
            catalogue = await client.api_token_permissions()
            roles = catalogue.get("roles") if isinstance(catalogue.get("roles"), dict) else {}
            assert isinstance(roles, dict)
            role_perms = roles.get(role)
            if not isinstance(role_perms, list):
                known = ", ".join(sorted(roles)) or "none"
                raise UsageError(f"unknown role {role!r} (the gateway knows: {known})")
            perms = sorted({*perms, *(str(p) for p in role_perms)})
        body: dict[str, Any] = {"name": name, "permissions": perms}
        if user_email:
            body["user_email"] = user_email
        created = await client.create_api_token(body)
    token = created.get("token")
    if output == "token":
        app.echo(str(token))
        return
    if output == "json":
        app.echo_json(created)
        return
    details = created.get("api_token") if isinstance(created.get("api_token"), dict) else created
    assert isinstance(details, dict)
    app.echo(f"Created API token {name} ({_public_id(details)})")
    app.echo(f"Permissions: {', '.join(perms)}")
    app.echo(f"Token: {token}")
    app.note("Store it now: it will not be shown again.")


@api_token.command("delete")
@click.argument("public_id", metavar="ID")
@target_options
@pass_app
async def delete_token(app: App, public_id: str) -> None:
    """Delete (revoke) an API token."""
    async with app.connect() as (_target, client):
        await client.delete_api_token(public_id)
    app.echo(f"Deleted API token {public_id}")


COMMANDS = [api_token]
