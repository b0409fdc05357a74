"""``login``, ``logout`` and ``test-auth``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import asyncclick as click

from rgw.cli.app import App
from rgw.cli.options import Seconds, complete_racks, pass_app, target_options
from rgw.cli.runner import on_event_loop
from rgw.cli.style import GREEN, RED, table
from rgw.config import ConfigData
from rgw.deadline import within
from rgw.errors import (
    ENROL_HINT,
    AuthenticationError,
    GatewayUnreachable,
    MfaError,
    PartialFailure,
    RgwError,
    UsageError,
)
from rgw.models import DEFAULT_PARALLEL, LoginRequest, RackConfig, parse_time, time_text
from rgw.targets import login_target, login_targets, read_stored_session, stored_url
from rgw.text import printable

if TYPE_CHECKING:  # the events and renderers are imported by the login command only
    from rgw.login.events import EventSink, LoginEvent
    from rgw.login.flow import LoginOptions
    from rgw.login.multi import RackLoginResult


def make_renderer(
    app: App,
    progress: str,
    racks: list[str],
    *,
    qr: bool = False,
    url_only: bool = False,
    all_urls: bool = False,
) -> EventSink:
    """JSON lines, a live block with spinners on a terminal, or plain lines (with ``--qr``, the URL's
    QR code after it); with ``--print-url-only`` the URL alone on stdout (and JSON lines if asked).

    The live block shows each rack's own sign-in URL only with ``all_urls`` (``--no-browser``) or
    when stdout is not a terminal (the output is kept); otherwise the one-tab page's URL stands for
    the racks' links.
    """
    from rgw.cli.live import LiveRenderer
    from rgw.cli.render import JsonRenderer, QrCodes, TextRenderer, UrlOnlyRenderer

    if url_only:
        url = UrlOnlyRenderer(app.out)
        if progress != "json":
            return url
        json_lines = JsonRenderer(app.err)

        def both(event: LoginEvent) -> None:
            url(event)
            json_lines(event)

        return both
    if progress == "json":
        return JsonRenderer(app.err)
    codes = QrCodes(columns=lambda: terminal_size(app)[0], rows=lambda: terminal_size(app)[1]) if qr else None
    if app.live_terminal(app.err):
        full_urls = all_urls or not app.live_terminal(app.out)
        return LiveRenderer(app.err, racks, color=app.use_color(app.err), qr=codes, full_urls=full_urls)
    return TextRenderer(app.err, prefix_racks=len(racks) > 1, qr=codes)


def terminal_size(app: App) -> tuple[int, int | None]:
    """Columns and rows of the terminal stderr is on; off a terminal, room for any QR code (it is
    neither cut nor scrolled out of sight: rows None)."""
    import os

    if not app.live_terminal(app.err):
        return 1000, None
    try:
        size = os.get_terminal_size(app.err.fileno())
    except (OSError, ValueError, AttributeError):
        return 80, 24
    return size.columns, size.lines


@click.command("login")
@click.argument("rack_arg", metavar="[RACK]", required=False, shell_complete=complete_racks)
@click.argument("url_arg", metavar="[URL]", required=False)
@click.option(
    "--rack",
    "-r",
    "racks",
    multiple=True,
    metavar="RACK",
    shell_complete=complete_racks,
    help="A stored rack to log in to; repeat for several.",
)
@click.option("--all", "all_racks", is_flag=True, help="Log in to every configured rack.")
@click.option(
    "--expired-only", is_flag=True, help="With --all/--rack: only racks whose session is missing or rejected."
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=DEFAULT_PARALLEL,
    show_default=True,
    help="How many rack logins run at once.",
)
@click.option("--no-browser", is_flag=True, help="Do not open a browser; print the URL to open.")
@click.option("--qr", is_flag=True, help="Also show the sign-in URL as a QR code, to sign in on a phone.")
@click.option(
    "--print-url-only",
    is_flag=True,
    help="Print only the sign-in URL on stdout, open no browser, and wait (for wrappers); the exit code tells.",
)
@click.option(
    "--timeout",
    type=Seconds(min=1),
    default=600.0,
    show_default=True,
    help="Seconds to wait for the whole login.",
)
@click.option(
    "--loopback-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port of the local callback listener (default: random).",
)
@click.option("--no-loopback", is_flag=True, help="Do not start the local callback listener; poll only.")
@click.option(
    "--progress",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Progress on stderr: lines, or one JSON event a line.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the per-rack results as JSON on stdout.")
@click.option(
    "--insecure-http",
    is_flag=True,
    help="Allow a plain-HTTP gateway on another machine (stored for the rack; credentials travel unencrypted).",
)
@click.option(
    "--accept-redirect",
    "accept_redirect",
    metavar="HOST",
    default=None,
    help="Accept a sign-in that now returns to HOST, not to the host this rack's sign-in returned to before.",
)
@click.option(
    "--token-storage",
    type=click.Choice(["file", "keyring"]),
    default=None,
    help="Where this machine keeps session tokens from now on: config.json (0600, the default) or the OS keyring.",
)
@pass_app
@on_event_loop
async def login(
    app: App,
    rack_arg: str | None,
    url_arg: str | None,
    racks: tuple[str, ...],
    all_racks: bool,
    expired_only: bool,
    parallel: int,
    no_browser: bool,
    qr: bool,
    print_url_only: bool,
    timeout: float,  # noqa: ASYNC109 - the --timeout option, applied with move_on_after
    loopback_port: int,
    no_loopback: bool,
    progress: str,
    as_json: bool,
    insecure_http: bool,
    accept_redirect: str | None,
    token_storage: str | None,
) -> None:
    """Log in to a rack gateway through your browser.

    \b
    rack-gateway login production https://gateway.example.com   new rack
    rack-gateway login production                               stored rack
    rack-gateway login                                          current rack
    rack-gateway login --rack a --rack b   |   --all [--expired-only]
    """
    if len(racks) == 1 and rack_arg is None and not all_racks:
        rack_arg, racks = racks[0], ()  # `login --rack prod` is `login prod`
    multi = bool(racks) or all_racks
    check_login_flags(rack_arg, url_arg, multi, expired_only, qr, print_url_only, as_json)
    data = await app.store.read(tokens=None if expired_only else ())  # the one read before the flow's locked write
    requests = await login_requests(app, data, rack_arg, url_arg, racks, all_racks, expired_only, insecure_http)
    moved = await repointed(app, data, requests[0]) if url_arg is not None and not multi else None
    if not requests:
        app.note("Every selected rack already has a valid session." if expired_only else "No racks to log in to.")
        if as_json:
            app.echo_json([])
        return
    from rgw.login.flow import LoginOptions

    options = LoginOptions(
        timeout=timeout,
        open_browser=not (no_browser or print_url_only),
        use_loopback=not no_loopback,
        loopback_port=loopback_port,
        make_current=not multi,
        token_storage=token_storage,
        accept_return=accept_redirect,
    )
    emit = make_renderer(app, progress, [r.rack for r in requests], qr=qr, url_only=print_url_only, all_urls=no_browser)
    results = await log_in(app, data, requests, options, emit, parallel=parallel)
    show_login_results(app, results, multi=multi, as_json=as_json, print_url_only=print_url_only)
    if moved is not None and results[0].ok:
        await revoke_moved(app, moved)
    raise_login_failures(results, multi=multi)


async def login_requests(
    app: App,
    data: ConfigData,
    rack_arg: str | None,
    url_arg: str | None,
    racks: tuple[str, ...],
    all_racks: bool,
    expired_only: bool,
    insecure_http: bool,
) -> list[LoginRequest]:
    """The racks this login is for: the ones named by --rack/--all (with --expired-only, those whose
    session is missing or rejected), else the one of ``RACK [URL]`` or the selected rack."""
    if racks or all_racks:
        requests = login_targets(data, racks, all_racks=all_racks, insecure_http=insecure_http)
        return await still_valid_removed(app, data, requests) if expired_only else requests
    rack = rack_arg if rack_arg is not None else app.options.rack
    return [login_target(data, app.selection, rack, url_arg, insecure_http=insecure_http)]


async def repointed(app: App, data: ConfigData, request: LoginRequest) -> RackConfig | None:
    """``login RACK URL`` for a stored rack with a session at another gateway: say so, and return
    that rack's entry (its session is revoked on its old gateway once the new login succeeds)."""
    old = data.rack(request.rack)
    if old is None or not old.logged_in or data.rack_problem(request.rack) is not None:
        return None
    old_url = stored_url(old)
    if old_url == request.url:
        return None
    await app.store.fetch_tokens(data, [request.rack])
    old = data.rack(request.rack)
    if old is None or not old.token:
        return None
    app.note(
        f"Note: rack {printable(request.rack)} pointed at {old_url}; this login points it at {request.url}.\n"
        f"Its session at {old_url} will be revoked once this login succeeds."
    )
    return old


#: Seconds the old gateway of a re-pointed rack gets to revoke the session it held.
REVOKE_MOVED_TIMEOUT = 10.0


async def revoke_moved(app: App, old: RackConfig) -> None:
    """Revoke a re-pointed rack's old session on its old gateway, as a re-login revokes the one it replaces."""
    assert old.token is not None
    url = stored_url(old)
    try:
        with within(REVOKE_MOVED_TIMEOUT):
            async with app.command_client(
                url, old.token, insecure_http=bool(old.insecure_http), announce_retries=False
            ) as client:
                await client.logout()
            app.note(f"Revoked the session rack {printable(old.name)} had at {url}.")
            return
    except AuthenticationError:
        app.note(f"The session rack {printable(old.name)} had at {url} was already invalid there.")
        return
    except RgwError as exc:
        reason = exc.cause_text if isinstance(exc, GatewayUnreachable) else exc.message
        app.note(
            f"Warning: could not revoke the session rack {printable(old.name)} had at {url} ({printable(reason)}); "
            "it stays valid there until it expires."
        )
        return
    app.note(
        f"Warning: {url} did not answer within {REVOKE_MOVED_TIMEOUT:g} s: the session rack "
        f"{printable(old.name)} had there stays valid until it expires."
    )


def check_login_flags(
    rack_arg: str | None,
    url_arg: str | None,
    multi: bool,
    expired_only: bool,
    qr: bool,
    print_url_only: bool,
    as_json: bool,
) -> None:
    """The login options that do not go together."""
    if multi and (rack_arg is not None or url_arg):
        raise UsageError("give racks either as arguments or with --rack/--all, not both")
    if expired_only and not multi:
        raise UsageError("--expired-only goes with --all or --rack")
    if multi and (qr or print_url_only):
        raise UsageError("--qr and --print-url-only log in to one rack at a time")
    if print_url_only and as_json:
        raise UsageError("--print-url-only prints the URL alone on stdout: leave out --json")


async def log_in(
    app: App,
    data: ConfigData,
    requests: list[LoginRequest],
    options: LoginOptions,
    emit: EventSink,
    *,
    parallel: int,
) -> list[RackLoginResult]:
    """Run the logins (at most ``parallel`` at once), the live block's spinner beside them."""
    from rgw.cli import LOGGED_IN_BEFORE_INTERRUPT
    from rgw.cli.live import LiveRenderer
    from rgw.login.browser import NoBrowser, SystemBrowser
    from rgw.login.multi import LoginCoordinator

    coordinator = LoginCoordinator(
        store=app.store,
        browser=(app.browser or SystemBrowser(app.environ)) if options.open_browser else NoBrowser(),
        device=app.device(data),
        emit=emit,
        options=options,
        paste=app.paste_source() if len(requests) == 1 else None,
        # MFA in the terminal when the gateway asks for it; questions name their rack when many log in.
        mfa=app.login_solver(emit, name_racks=len(requests) > 1),
        client_factory=app.login_client,
    )
    live = emit if isinstance(emit, LiveRenderer) else None
    done = LOGGED_IN_BEFORE_INTERRUPT.get()
    if done is None:
        done = []

    def note(result: RackLoginResult) -> None:
        if result.ok:
            done.append(result.rack)

    # The live block owns stderr while it is drawn: notices and -v lines go above it, never under a redraw.
    with app.lines_above(live.write_above if live is not None else None):
        async with anyio.create_task_group() as spinner:
            if live is not None:
                spinner.start_soon(live.animate)
            results = await coordinator.login_all(requests, parallel=parallel, on_result=note)
            spinner.cancel_scope.cancel()
    return results


def show_login_results(
    app: App, results: list[RackLoginResult], *, multi: bool, as_json: bool, print_url_only: bool
) -> None:
    """``Logged in as`` for one rack, a table for many, or JSON."""
    if as_json:
        app.echo_json([r.as_json() for r in results])
    elif len(results) == 1 and not multi:
        if results[0].ok:  # with --print-url-only stdout holds the URL alone
            (app.note if print_url_only else app.echo)(f"Logged in as {results[0].email}")
    else:
        rows = [
            (r.rack, "logged in", r.email or "") if r.error is None else (r.rack, "failed", r.error.message)
            for r in results
        ]
        colors = [(None, GREEN if r.error is None else RED, None) for r in results]
        for line in table(rows, ("RACK", "RESULT", "DETAIL"), colors=colors, color=app.use_color(app.out)):
            app.echo_styled(line)


def raise_login_failures(results: list[RackLoginResult], *, multi: bool) -> None:
    """One rack's error as it is; for many, which failed (exit 10)."""
    failed = [r for r in results if r.error is not None]
    if not failed:
        return
    if len(results) == 1 and not multi and failed[0].error is not None:
        raise failed[0].error
    names = ", ".join(printable(r.rack) for r in failed)
    if len(failed) == len(results):  # none to keep: say so, not "the racks that succeeded"
        raise PartialFailure(
            f"all {len(results)} rack logins failed: {names}",
            hint="No rack was logged in. The details are above; run the login again when they are fixed.",
        )
    raise PartialFailure(f"{len(failed)} of {len(results)} rack logins failed: {names}")


async def still_valid_removed(app: App, data: ConfigData, requests: list[LoginRequest]) -> list[LoginRequest]:
    """``--expired-only``: the racks whose session is missing or that the gateway rejects now."""
    valid: set[str] = set()

    async def check(name: str, request: LoginRequest, token: str) -> None:
        async with app.command_client(request.url, token, insecure_http=request.insecure_http) as client:
            try:
                await client.info()
            except RgwError:
                return  # rejected, or unknown because unreachable: log in again
        valid.add(name)

    with within(app.command_timeout):  # one deadline for every check; a rack not answered logs in again
        async with anyio.create_task_group() as tg:
            for request in requests:
                rack = data.rack(request.rack)
                if rack is not None and rack.token:
                    tg.start_soon(check, request.rack, request, rack.token)
    return [r for r in requests if r.rack not in valid]


@click.command("logout")
@click.option("--local", is_flag=True, help="Only forget the session here (when the gateway is unreachable).")
@click.option(
    "--all",
    "all_racks",
    is_flag=True,
    help="Every rack: revoke each session on its gateway (at once) and remove it here, even when unreachable.",
)
@target_options
@pass_app
@on_event_loop
async def logout(app: App, local: bool, all_racks: bool) -> None:
    """Revoke the session on the gateway and remove it locally (the rack stays configured)."""
    if all_racks:
        return await logout_all(app, local)
    rack = await read_stored_session(app.store, app.selection)
    name = rack.name
    assert rack.token is not None
    revoked = "skipped"
    if not local:
        async with app.command_client(stored_url(rack), rack.token, insecure_http=bool(rack.insecure_http)) as client:
            try:
                await client.logout()
                revoked = "revoked"
            except AuthenticationError:
                revoked = "already-invalid"
            except GatewayUnreachable as exc:
                exc.hint = (
                    f"{exc.hint}\nThe session was kept so it can still be revoked. To forget it here only: "
                    "rack-gateway logout --local"
                )
                raise
    token = rack.token

    def forget(data: ConfigData) -> None:
        current = data.rack(name)
        if current is not None and current.token == token:  # a newer login's session is kept
            data.clear_session(name)

    await app.store.update(forget)
    if revoked == "already-invalid":
        app.note("The gateway already considered this session invalid.")
    elif revoked == "skipped":
        app.note("The session was not revoked on the gateway (--local); it stays valid there until it expires.")
    app.echo(f"Logged out of {printable(name)}")


#: What ``logout --all`` did to one rack's session: outcome and detail.
Outcome = tuple[str, str | None]


async def logout_all(app: App, local: bool) -> None:
    """``logout --all``: revoke every stored session on its gateway at once, then forget them all here.

    A session whose gateway cannot be reached is removed here all the same (and said so, exit 11):
    it stays valid on that gateway until it expires or an administrator revokes it.
    """
    racks = [rack for rack in (await app.store.read()).racks() if rack.token]
    if not racks:
        app.note("No rack has a session to log out of.")
        return
    if local:
        results: dict[str, Outcome] = {rack.name: ("local", None) for rack in racks}
    else:
        results = await revoke_all(app, racks)
    tokens = {rack.name: rack.token for rack in racks}

    def forget(data: ConfigData) -> None:
        for name, token in tokens.items():
            current = data.rack(name)
            if current is not None and current.token == token:  # a newer login's session is kept
                data.clear_session(name)

    await app.store.update(forget)
    show_logouts(app, racks, results)
    failed = [printable(rack.name) for rack in racks if results[rack.name][0] == "not-revoked"]
    if local:
        app.note("The sessions were not revoked on their gateways (--local); they stay valid there until they expire.")
    if failed:
        raise PartialFailure(
            f"{len(failed)} of {len(racks)} sessions could not be revoked on their gateway: {', '.join(failed)}",
            hint="They were removed from this machine but stay valid on those gateways until they expire; "
            "an administrator can revoke them in the gateway's web UI.",
        )


async def revoke_all(app: App, racks: list[RackConfig]) -> dict[str, Outcome]:
    """Revoke each rack's session on its gateway, ``DEFAULT_PARALLEL`` at a time; rack -> outcome."""
    results: dict[str, Outcome] = {}
    limiter = anyio.CapacityLimiter(DEFAULT_PARALLEL)

    async def revoke(rack: RackConfig) -> None:
        assert rack.token is not None
        async with limiter:
            try:
                client = app.command_client(
                    stored_url(rack), rack.token, insecure_http=bool(rack.insecure_http), announce_retries=False
                )
                async with client:
                    await client.logout()
                results[rack.name] = ("revoked", None)
            except AuthenticationError:
                results[rack.name] = ("already-invalid", None)
            except GatewayUnreachable as exc:
                results[rack.name] = ("not-revoked", f"gateway unreachable ({exc.cause_text})")
            except RgwError as exc:
                results[rack.name] = ("not-revoked", exc.message)

    timeout = app.command_timeout
    with within(timeout):  # the command's one deadline, for every rack together
        async with anyio.create_task_group() as tg:
            for rack in racks:
                tg.start_soon(revoke, rack)
    for rack in racks:
        results.setdefault(rack.name, ("not-revoked", f"no answer within --timeout {timeout:g} s"))
    return results


def show_logouts(app: App, racks: list[RackConfig], results: dict[str, Outcome]) -> None:
    """The table of ``logout --all``: each rack and what became of its session."""
    words = {
        "revoked": ("logged out (session revoked)", GREEN),
        "already-invalid": ("logged out (the gateway had already invalidated the session)", GREEN),
        "not-revoked": ("logged out here only: {detail}", RED),
        "local": ("logged out here only (--local)", None),
    }
    rows, colors = [], []
    for rack in racks:
        outcome, detail = results[rack.name]
        text, code = words[outcome]
        rows.append((printable(rack.name, limit=40), printable(text.format(detail=detail), limit=100)))
        colors.append((None, code))
    for line in table(rows, ("RACK", "RESULT"), colors=colors, color=app.use_color(app.out)):
        app.echo_styled(line)


def format_expiry(value: str | None) -> str:
    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else "unknown"


@click.command("test-auth")
@click.argument("topic", metavar="[mfa|otp|webauthn]", required=False, type=click.Choice(["mfa", "otp", "webauthn"]))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@target_options
@pass_app
@on_event_loop
async def test_auth(app: App, topic: str | None, as_json: bool) -> None:
    """Check that the current credentials work, and show who you are (or your MFA status)."""
    if topic is not None:
        from rgw.cli.mfa_status import show_mfa

        return await show_mfa(app, topic, as_json)
    async with app.connect() as (target, client):
        info = await client.info()
    user = info.get("user") if isinstance(info.get("user"), dict) else {}
    assert isinstance(user, dict)
    email = str(user.get("email") or (target.rack.email if target.rack else "") or "unknown")
    roles = user.get("roles")
    role_text = ", ".join(str(r) for r in roles) if isinstance(roles, list) and roles else None
    if role_text is None:
        # A deployed gateway names no role for an API token ("roles": []): the token has its own
        # permissions, which the token listing shows.
        role_text = "none named (an API token has its own permissions)" if target.api_token else "none"
    session = info.get("session") if isinstance(info.get("session"), dict) else {}
    assert isinstance(session, dict)
    stored = target.rack.expires_at if target.rack else None
    expires = client.session_expires_at or session.get("expires_at") or stored
    # The gateway lets such a user reach /info (and its MFA routes) but refuses most commands.
    must_enrol = not target.api_token and user.get("mfa_required") is True and user.get("mfa_enrolled") is False
    if as_json:
        app.echo_json(
            {
                "authenticated": True,
                "email": email,
                "roles": roles if isinstance(roles, list) else [],
                "credential": "api_token" if target.api_token else "session",
                "expires_at": None if target.api_token else time_text(expires),
                "mfa_enrollment_required": must_enrol,
                "rack": target.rack_name,
                "url": target.url,
            }
        )
    else:
        app.echo(f"Authenticated as {email}")
        app.echo(f"Role: {role_text}")
        if target.api_token:
            app.echo("Credential: API token")
        else:
            app.echo(f"Session expires: {format_expiry(expires if isinstance(expires, str) else None)}")
    if must_enrol:
        raise MfaError(
            "MFA enrolment required: this gateway requires MFA for your account, and none is enrolled yet",
            hint=ENROL_HINT,
        )


COMMANDS = [login, logout, test_auth]
