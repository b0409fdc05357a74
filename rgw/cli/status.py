"""``status`` (every rack's session, as ``gh auth status`` / ``tsh status``) and ``token``.

``status`` asks each rack's gateway whether it accepts the stored session now (``GET /api/v1/info``),
all racks at once (at most ``DEFAULT_PARALLEL`` at a time, each check taking one slot of its
gateway's shared request budget, each check its own deadline of ``--timeout``), and shows per rack: the user, the
answer, the time left, the MFA state, and which rack is current.  ``--offline`` shows what is
stored without asking anyone (a local command: no event loop, no HTTP stack).  It exits 0 only when
the current rack's session is good; otherwise with the error that describes the current rack
(3 rejected or logged out, 5 unreachable, 10 no rack selected ...).

``token`` prints the credential the next command would send, for other tools (as ``gh auth
token``): an API token given by ``--api-token``/``RACK_GATEWAY_API_TOKEN``, else the current rack's
session.  It goes to stdout only; on a terminal a warning goes to stderr first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncclick as click

from rgw.cli.app import App, session_error
from rgw.cli.options import pass_app
from rgw.cli.runner import on_event_loop
from rgw.cli.style import DIM, GREEN, RED, YELLOW, table, time_left
from rgw.config import ConfigData
from rgw.errors import (
    AuthenticationError,
    GatewayUnreachable,
    MfaRequired,
    NoRackError,
    NotLoggedIn,
    RgwError,
)
from rgw.models import DEFAULT_PARALLEL, RackConfig, time_text
from rgw.targets import Selection, Target, command_target, login_hint, unknown_rack, usable_rack
from rgw.text import printable

if TYPE_CHECKING:
    from rgw.client import GatewayClient

#: Seconds each rack's gateway gets to answer ``status`` (``--timeout``).
DEFAULT_STATUS_TIMEOUT = 5.0

#: Session states: what the gateway said (valid, rejected, mfa_required), could not say
#: (unreachable, error, refused), or, offline, what is stored (stored, rejected, logged_out).
GOOD = ("valid", "stored")
COLORS = {
    "valid": GREEN,
    "stored": GREEN,
    "rejected": RED,
    "unreachable": RED,
    "error": RED,
    "refused": RED,
    "mfa_required": YELLOW,
    "logged_out": DIM,
}


@dataclass
class RackStatus:
    rack: RackConfig
    current: bool
    session: str
    detail: str | None = None
    expires_at: str | None = None
    mfa_enrolled: bool | None = None
    mfa_required: bool | None = None
    #: The error that says why this rack's session is not good (raised when it is the current one).
    error: RgwError | None = None

    @property
    def good(self) -> bool:
        return self.session in GOOD

    def session_label(self) -> str:
        return {"mfa_required": "MFA required", "logged_out": "logged out"}.get(self.session, self.session)

    @property
    def mfa_verified(self) -> bool | None:
        """The stored ``mfa_verified``, unless the gateway says now that no MFA is enrolled: then it
        was not verified (a gateway answers ``mfa_verified: true`` for an account without MFA)."""
        if self.mfa_enrolled is False:
            return False
        return self.rack.mfa_verified if self.rack.logged_in else None

    def mfa_text(self) -> str:
        """What the gateway said just now wins; what the login stored only when it said nothing."""
        if self.mfa_enrolled is False:
            return "enrolment required" if self.mfa_required else "not enrolled"
        if self.mfa_verified is True:
            return "verified at login"
        if self.mfa_enrolled is True:
            return "enrolled"
        if self.mfa_verified is False:
            return "not verified"
        return "-"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.rack.name,
            "url": self.rack.url,
            "current": self.current,
            "user": self.rack.email,
            "session": self.session,
            "detail": self.detail,
            "expires_at": time_text(self.expires_at),  # out of range: unknown
            "mfa": self.mfa_text(),
            "mfa_verified": self.mfa_verified,
            "mfa_enrolled": self.mfa_enrolled,
            "mfa_required": self.mfa_required,
        }


def stored_status(data: ConfigData, rack: RackConfig, current: bool) -> RackStatus:
    """What the config says, asking nobody (``--offline``, and the start of every check)."""
    try:
        usable_rack(data, rack.name)
    except RgwError as exc:  # an entry a hand edit broke: said as `racks` and `-r` say it
        problem = data.rack_problem(rack.name) or exc.message
        return RackStatus(rack, current, "refused", printable(f"unusable: {problem}", limit=80), error=exc)
    hint = login_hint(rack.name, rack.url or None)
    if not rack.logged_in:
        return RackStatus(
            rack, current, "logged_out", error=NotLoggedIn(f"not logged in to {printable(rack.name)}", hint=hint)
        )
    if rack.rejected:
        rejected = AuthenticationError("session expired or invalid", reason=rack.rejected, hint=hint)
        return RackStatus(rack, current, "rejected", rack.rejected, rack.expires_at, error=rejected)
    return RackStatus(rack, current, "stored", expires_at=rack.expires_at)


@click.command("status")
@click.option("--offline", is_flag=True, help="Show what is stored; ask no gateway.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_STATUS_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long each rack's gateway gets to answer.",
)
@pass_app
async def status(app: App, offline: bool, as_json: bool, timeout: float) -> None:  # noqa: ASYNC109 - a per-rack deadline
    """Show every rack's session: user, whether the gateway accepts it now, time left, MFA state.

    Exits 0 only when the current rack's session is good. With --offline, shows what is stored.
    """
    data = await app.store.read()
    if not data.rack_names():
        raise NotLoggedIn("not logged in: no rack is configured yet", hint=login_hint(None, None))
    current = app.selection.rack_name(data)
    stored = [stored_status(data, rack, rack.name == current) for rack in data.racks()]
    results = stored if offline else await check_all(app, data, stored, timeout)
    if app.selection.token():
        app.note(
            "Note: an API token is set (--api-token or RACK_GATEWAY_API_TOKEN); commands use it, not these sessions."
        )
    if as_json:
        app.echo_json({"current": current, "checked": not offline, "racks": [r.as_json() for r in results]})
    else:
        show(app, results)
    mine = next((r for r in results if r.current), None)
    if mine is None:
        if current is None:
            raise NoRackError(
                "no rack selected", hint="Please run: rack-gateway switch <rack>   (or set RACK_GATEWAY_RACK)"
            )
        raise unknown_rack(current, data)
    if not mine.good:
        assert mine.error is not None
        raise mine.error


def show(app: App, results: list[RackStatus]) -> None:
    """One line per rack that fits the terminal (user and rack cut short first), the session's
    detail on a line of its own under it."""
    now = datetime.now(UTC)
    color = app.use_color(app.out)
    rows = [
        (
            "*" if r.current else "",
            printable(r.rack.name, limit=40),
            printable(r.rack.email or "-"),
            r.session_label(),
            expires_text(r.expires_at, now) if r.rack.logged_in else "-",
            r.mfa_text(),
        )
        for r in results
    ]
    colors = [(None, None, None, COLORS.get(r.session), None, None) for r in results]
    lines = table(
        rows,
        ("", "RACK", "USER", "SESSION", "EXPIRES", "MFA"),
        colors=colors,
        color=color,
        columns=app.columns(app.out),
        shrink=((2,), (1,)),  # the user first, the rack name only then
        details=[r.detail for r in results],
        detail_at=3,
    )
    for line in lines:
        app.echo_styled(line)


def expires_text(expires_at: str | None, now: datetime) -> str:
    """``89d left``, ``expiry unknown``; a passed expiry is ``passed`` (sessions slide: the gateway decides)."""
    left = time_left(expires_at, now)
    if left.startswith("expiry passed"):
        return "passed"
    return left or "-"


@on_event_loop
async def check_all(app: App, data: ConfigData, stored: list[RackStatus], timeout: float) -> list[RackStatus]:  # noqa: ASYNC109
    """Ask every logged-in rack's gateway at once; the others keep their stored state."""
    import anyio

    results = list(stored)
    limiter = anyio.CapacityLimiter(DEFAULT_PARALLEL)

    async def check_one(index: int) -> None:
        async with limiter:
            results[index] = await check(app, data, stored[index], timeout)

    async with anyio.create_task_group() as tg:
        for index, entry in enumerate(stored):
            if entry.rack.logged_in and entry.session != "refused":
                tg.start_soon(check_one, index)
    return results


async def check(app: App, data: ConfigData, entry: RackStatus, timeout: float) -> RackStatus:  # noqa: ASYNC109
    """One rack: does its gateway accept the stored session now?  Asked within ``timeout``."""
    from rgw.deadline import within

    rack = entry.rack
    try:
        # Only the stored session, to its own rack's URL (no API token, no RACK_GATEWAY_URL).
        target = command_target(data, Selection(rack=rack.name))
    except RgwError as exc:
        return RackStatus(rack, entry.current, "refused", printable(exc.message, limit=80), rack.expires_at, error=exc)
    # This rack's deadline: the client's retries end before it with the last failure (e.g.
    # "connection refused"); a gateway that holds the connection open without answering is cut off
    # by it.  Each request takes a slot of the gateway's budget.
    with within(timeout):
        try:
            client = app.command_client(
                target.url, target.token, insecure_http=target.insecure_http, announce_retries=False
            )
            async with client:
                return await ask(app, target, client, entry)
        except RgwError as exc:
            return failed(entry, exc)
    error = GatewayUnreachable(f"gateway {target.url} did not answer within {timeout:g} s", cause="timeout")
    return RackStatus(
        rack, entry.current, "unreachable", f"no answer within {timeout:g} s", rack.expires_at, error=error
    )


async def ask(app: App, target: Target, client: GatewayClient, entry: RackStatus) -> RackStatus:
    rack = entry.rack
    try:
        info = await client.info()
    except MfaRequired as exc:
        return RackStatus(
            rack, entry.current, "mfa_required", printable(exc.message, limit=80), rack.expires_at, error=exc
        )
    except AuthenticationError as exc:
        error = session_error(exc, target)
        await app.remember_rejection(target, error)
        return RackStatus(rack, entry.current, "rejected", error.reason or "rejected", rack.expires_at, error=error)
    await app.remember_expiry(target, client)
    user = info.get("user") if isinstance(info.get("user"), dict) else {}
    session = info.get("session") if isinstance(info.get("session"), dict) else {}
    assert isinstance(user, dict)
    assert isinstance(session, dict)
    expires = client.session_expires_at or session.get("expires_at") or rack.expires_at
    enrolled, required = user.get("mfa_enrolled"), user.get("mfa_required")
    return RackStatus(
        rack,
        entry.current,
        "valid",
        expires_at=expires if isinstance(expires, str) else None,
        mfa_enrolled=enrolled if isinstance(enrolled, bool) else None,
        mfa_required=required if isinstance(required, bool) else None,
    )


def failed(entry: RackStatus, exc: RgwError) -> RackStatus:
    rack = entry.rack
    if isinstance(exc, GatewayUnreachable):
        return RackStatus(rack, entry.current, "unreachable", exc.cause_text, rack.expires_at, error=exc)
    return RackStatus(rack, entry.current, "error", printable(exc.message, limit=80), rack.expires_at, error=exc)


@click.command("token")
@pass_app
async def token(app: App) -> None:
    """Print the current credential (for other tools: rack-gateway token | ...).

    An API token from --api-token or RACK_GATEWAY_API_TOKEN if one is set, else the current rack's
    session.
    """
    target = await app.target()
    rack = target.rack
    if not target.api_token and rack is not None and rack.rejected:
        raise AuthenticationError(
            "session expired or invalid",
            reason=rack.rejected,
            hint=f"{target.login_hint()}\n(the gateway rejected this session: {printable(rack.rejected)})",
        )
    if _isatty(app.out):
        app.note(
            f"Warning: this is a secret: anyone who sees it can act as you on {target.url}. "
            "Pipe it into the program that needs it rather than showing it."
        )
    app.out.write(target.token + "\n")  # is_token() holds: printable ASCII, nothing to escape
    app.out.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
