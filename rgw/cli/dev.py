"""``dev-gateway`` (serve the reference gateway on loopback) and ``demo`` (a whole login, end to end).

Both need the ``testing`` extra (starlette, uvicorn, ...), imported only when they run.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Any

import anyio
import asyncclick as click

from rgw.cli.app import App, Options
from rgw.cli.options import pass_app
from rgw.cli.runner import on_event_loop
from rgw.errors import RgwError
from rgw.text import printable


def _require_oidc() -> None:
    try:
        import authlib  # noqa: F401
        import joserfc  # noqa: F401
    except ImportError as exc:
        raise RgwError(
            "sign-in through an OpenID Connect provider needs Authlib and joserfc (the testing extra)",
            hint="pip install 'rgw[testing]'",
        ) from exc


def _require_testing() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise RgwError(
            "the reference gateway needs the testing extra",
            hint="pip install 'rgw[testing]'",
        ) from exc


def _settings(
    db: str | None,
    allowed_domain: str,
    deployed_mode: bool,
    rate_limit: bool | None = None,
    oidc: tuple[str, str, str] | None = None,
    remember_sign_in: bool = False,
) -> Any:
    """Settings for the dev gateway; `rate_limit` None = the mode's default (on when deployed);
    `oidc` = (issuer, client id, client secret) of an OpenID Connect provider to sign in with."""
    from rgw.testing import GatewaySettings
    from rgw.testing.gateway.settings import DEPLOYED_RATE_LIMIT

    extra: dict[str, Any] = {}
    if rate_limit is not None:
        extra["rate_limit"] = DEPLOYED_RATE_LIMIT if rate_limit else None
    if oidc is not None:
        extra.update(oidc_issuer=oidc[0], oidc_client_id=oidc[1], oidc_client_secret=oidc[2])
    return GatewaySettings(
        db_path=db or ":memory:",
        allowed_domain=allowed_domain or None,
        extensions=not deployed_mode,
        remember_sign_in=remember_sign_in,
        **extra,
    )


async def _check_provider(gateway: Any) -> str:
    """Discover the gateway's OpenID Connect provider now, so a wrong issuer fails at start-up."""
    from rgw.testing.gateway.oidc import ProviderUnavailable

    try:
        metadata = await gateway.oidc.discover()
    except ProviderUnavailable as exc:
        raise RgwError(
            f"cannot use the OpenID Connect provider {gateway.oidc.issuer}: {exc}",
            hint="Check --oidc-issuer (the provider's issuer URL, without /.well-known/...) and that it is reachable.",
        ) from exc
    return str(metadata.authorization_endpoint)


def _describe_users(gateway: Any) -> list[str]:
    lines = []
    for user in gateway.users():
        roles = ", ".join(user["roles"])
        extra = "  (MFA: TOTP secret " + user["totp_secret"] + ")" if user.get("totp_secret") else ""
        lines.append(f"  {user['email']:<26} {roles}{extra}")
    return lines


@click.command("dev-gateway")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0 = random).")
@click.option("--db", metavar="PATH", help="SQLite file (default: in memory).")
@click.option(
    "--allowed-domain",
    default="example.com",
    show_default=True,
    envvar="GOOGLE_ALLOWED_DOMAIN",
    help="Allowed email domain(s), comma-separated (GOOGLE_ALLOWED_DOMAIN).",
)
@click.option("--deployed-mode", is_flag=True, help="Behave like a deployed Go gateway: no protocol extensions.")
@click.option(
    "--rate-limit/--no-rate-limit",
    default=None,
    help="The deployed gateway's limit on its login routes (10/s, burst 20, per client IP). "
    "Default: on with --deployed-mode, off otherwise.",
)
@click.option(
    "--oidc-issuer",
    metavar="URL",
    envvar="RGW_OIDC_ISSUER",
    help="Sign in through this OpenID Connect provider instead of the built-in page (RGW_OIDC_ISSUER).",
)
@click.option(
    "--oidc-client-id",
    metavar="ID",
    envvar="RGW_OIDC_CLIENT_ID",
    default="rack-gateway",
    show_default=True,
    help="The gateway's client id at the provider (RGW_OIDC_CLIENT_ID).",
)
@click.option(
    "--oidc-client-secret",
    metavar="SECRET",
    envvar="RGW_OIDC_CLIENT_SECRET",
    default="",
    help="The gateway's client secret at the provider; prefer RGW_OIDC_CLIENT_SECRET.",
)
@click.option(
    "--remember-sign-in",
    is_flag=True,
    help="The built-in sign-in page remembers the browser that signed in and signs it in again without a "
    "click, as an identity provider with a session does (every dev gateway on this host shares it).",
)
@pass_app
@on_event_loop
async def dev_gateway(
    app: App,
    host: str,
    port: int,
    db: str | None,
    allowed_domain: str,
    deployed_mode: bool,
    rate_limit: bool | None,
    oidc_issuer: str | None,
    oidc_client_id: str,
    oidc_client_secret: str,
    remember_sign_in: bool,
) -> None:
    """Serve the reference gateway (a stand-in for a deployed rack gateway) until Ctrl-C."""
    _require_testing()
    from rgw.testing import serving_gateway

    if oidc_issuer is not None:
        _require_oidc()
    oidc = (oidc_issuer, oidc_client_id, oidc_client_secret) if oidc_issuer else None
    settings = _settings(db, allowed_domain, deployed_mode, rate_limit, oidc, remember_sign_in)
    # uvicorn serves as a task on this loop; this task then sleeps until Ctrl-C cancels it, and
    # leaving the `async with` shuts the server down.
    async with serving_gateway(settings, host=host, port=port) as gw:
        mode = "deployed-gateway mode (no extensions)" if deployed_mode else "with protocol extensions"
        app.echo(f"Reference gateway listening on {gw.url} ({mode})")
        if gw.gateway.oidc is not None:
            await _check_provider(gw.gateway)
            app.echo(
                f"Sign-in: OpenID Connect provider {printable(gw.gateway.oidc.issuer)} "
                f"(client id {printable(oidc_client_id)}), redirect URI {gw.url}/api/v1/auth/cli/callback"
            )
        app.echo("Seeded users:")
        for line in _describe_users(gw.gateway):
            app.echo(line)
        limit = settings.rate_limit_value()
        if limit is None:
            app.echo("Rate limit: off")
        else:
            app.echo(f"Rate limit: {limit[0]:g} requests/s, burst {limit[1]}, per client IP, on the login routes")
        app.echo(f"Log in with: rack-gateway login dev {gw.url}")
        app.echo("Press Ctrl-C to stop.")
        await anyio.sleep_forever()


@click.command("demo")
@click.option("--email", default="developer@example.com", show_default=True, help="Who signs in.")
@click.option("--deployed-mode", is_flag=True, help="Run against a gateway with no protocol extensions.")
@click.option("--real-browser", is_flag=True, help="Open your own browser instead of the scripted one.")
@pass_app
@on_event_loop
async def demo(app: App, email: str, deployed_mode: bool, real_browser: bool) -> None:
    """Run a complete login on a built-in reference gateway: login, test-auth, apps, rack, logout."""
    _require_testing()
    from rgw.cli import run
    from rgw.testing import ScriptedBrowser, serving_gateway

    settings = _settings(None, "example.com", deployed_mode)
    with tempfile.TemporaryDirectory(prefix="rgw-demo-") as tmp:
        async with serving_gateway(settings) as gw:
            config_dir = Path(tmp) / "config"
            app.echo(f"Started the reference gateway at {gw.url}; config in {config_dir}")
            browser = None if real_browser else ScriptedBrowser(email=email)
            if browser is not None:
                app.echo(f"A scripted browser signs in as {email}.")
            for args in (["login", "demo", gw.url], ["test-auth"], ["apps"], ["rack"], ["racks"], ["logout"]):
                app.echo("")
                app.echo("$ rack-gateway " + shlex.join(args))
                step = App(
                    options=Options(config_dir=config_dir),
                    environ={},
                    out=app.out,
                    err=app.out,
                    browser=browser,
                    interactive=False,
                )
                code = await run(["--config", str(config_dir), *args], obj=step)
                if code != 0:
                    raise RgwError(f"demo step 'rack-gateway {shlex.join(args)}' failed with exit code {code}")
    app.echo("")
    app.echo("Demo complete: logged in, used the session, and logged out.")


COMMANDS = [dev_gateway, demo]
