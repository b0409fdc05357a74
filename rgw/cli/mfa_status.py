"""``test-auth mfa|otp|webauthn``: the MFA state of the current session, as the gateway reports it."""

from __future__ import annotations

from typing import Any

from rgw.cli.app import App
from rgw.errors import MfaError, PermissionDenied
from rgw.models import parse_time, time_text
from rgw.targets import shell_word

#: ``test-auth`` topics and the method types each shows.
FAMILIES = {"mfa": None, "otp": ("totp", "otp", "yubikey", "yubikey_otp"), "webauthn": ("webauthn",)}


def _when(value: object) -> str:
    """A time the gateway gave: ``never`` when it gave none, ``unknown`` when out of range or unparsable."""
    if value is None or value == "":
        return "never"
    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else "unknown"


def _last_verified(methods: list[dict[str, Any]]) -> tuple[str | None, str]:
    """The latest ``last_used_at`` of ``methods``: as JSON (None unless one is in range), and as text."""
    given = [m.get("last_used_at") for m in methods if m.get("last_used_at") not in (None, "")]
    used = [t for t in (parse_time(v) for v in given) if t is not None]
    if used:
        return max(used).strftime("%Y-%m-%dT%H:%M:%SZ"), max(used).strftime("%Y-%m-%d %H:%M:%S UTC")
    return None, "unknown" if given else "never"


def _yes(value: object) -> str:
    return "yes" if value is True else "no"


async def show_mfa(app: App, topic: str, as_json: bool) -> None:
    """``test-auth mfa|otp|webauthn``: enrollment, methods, last verification and step-up window."""
    async with app.connect() as (target, client):
        try:
            status = await client.mfa_status()
        except PermissionDenied as exc:
            if not target.api_token:
                raise
            raise MfaError(
                "MFA status belongs to a user session; API tokens have no MFA",
                hint=f"Run it without --api-token/RACK_GATEWAY_API_TOKEN after: rack-gateway login "
                f"{shell_word(target.rack_name) if target.rack_name else '<rack>'} {shell_word(target.url)}",
            ) from exc
    kinds = FAMILIES[topic]
    raw = status.get("methods")
    methods = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
    if kinds is not None:
        methods = [m for m in methods if str(m.get("type", "")).lower() in kinds]
    last, last_text = _last_verified(methods)
    window_given = status.get("recent_step_up_expires_at")
    window = time_text(window_given)  # out of range: unknown (None in JSON)
    summary = {
        "enrolled": status.get("enrolled") is True if kinds is None else bool(methods),
        "required": status.get("required") is True,
        "methods": methods,
        "preferred_method": status.get("preferred_method"),
        "last_verified_at": last,
        "recent_step_up_expires_at": window,
    }
    if as_json:
        app.echo_json(summary)
        return
    label = {"mfa": "MFA", "otp": "TOTP/OTP", "webauthn": "WebAuthn"}[topic]
    app.echo(f"{label} enrolled: {_yes(summary['enrolled'])}")
    app.echo(f"MFA required: {_yes(summary['required'])}")
    if topic == "mfa":
        app.echo(f"Preferred method: {summary['preferred_method'] or 'none'}")
    app.echo(f"Last verification: {last_text}")
    if isinstance(window_given, str) and window_given:
        app.echo(f"Step-up window: open until {_when(window_given)}")
    else:
        app.echo("Step-up window: closed (protected commands will ask for MFA)")
    if not methods:
        app.echo("Methods: none")
        return
    from rgw.cli.style import table

    rows = [
        (
            str(m.get("id", "-")),
            str(m.get("type", "-")),
            str(m.get("label") or "-"),
            _yes(m.get("cli_capable")),
            _when(m.get("last_used_at")),
        )
        for m in methods
    ]
    app.echo("Methods:")
    for line in table(rows, ("ID", "TYPE", "LABEL", "CLI", "LAST USED")):
        app.echo("  " + line)
