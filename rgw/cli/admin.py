"""``admin``: administrator actions of the reference gateway (revoke sessions, enforce MFA).

A deployed gateway does these in its web UI; the reference gateway (``rack-gateway dev-gateway``)
takes them on its admin routes, so tests and demos can revoke a session from the command line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncclick as click

from rgw.cli.app import App
from rgw.cli.options import pass_app, target_options
from rgw.cli.runner import on_event_loop
from rgw.errors import GatewayError, UsageError


@contextlib.contextmanager
def reference_only(command: str) -> Iterator[None]:
    """A deployed gateway answers these routes 404: say, in one line, that it is no reference gateway."""
    try:
        yield
    except GatewayError as exc:
        if exc.status != 404:
            raise
        raise GatewayError(
            f"'{command}' needs a reference gateway (rack-gateway dev gateway), and this one is not: "
            "on a deployed gateway, use its web UI (Users and Sessions)",
            status=404,
            hint="",
        ) from None


@click.group("admin")
async def admin() -> None:
    """Administrator actions on a reference gateway (needs the admin role)."""


@admin.command("revoke-sessions")
@click.option("--email", metavar="EMAIL", help="Revoke every session of this user.")
@click.option("--session-id", type=int, metavar="ID", help="Revoke this one session.")
@target_options
@pass_app
@on_event_loop
async def revoke_sessions(app: App, email: str | None, session_id: int | None) -> None:
    """Revoke a user's sessions (they must log in again)."""
    if (email is None) == (session_id is None):
        raise UsageError("give exactly one of --email EMAIL or --session-id ID")
    async with app.connect() as (_target, client):
        with reference_only("admin revoke-sessions"):
            count = await client.revoke_sessions(email=email, session_id=session_id)
    app.echo(f"Revoked {count} session{'s' if count != 1 else ''}")


@admin.command("require-mfa")
@click.argument("email")
@click.option("--off", is_flag=True, help="Stop requiring MFA for this user.")
@target_options
@pass_app
@on_event_loop
async def require_mfa(app: App, email: str, off: bool) -> None:
    """Require MFA for a user (their sessions are invalidated, as on a deployed gateway)."""
    async with app.connect() as (_target, client):
        with reference_only("admin require-mfa"):
            await client.set_mfa_required(email, not off)
    app.echo(f"MFA {'no longer ' if off else ''}required for {email}")


COMMANDS = [admin]
