"""The few HTML pages of the reference gateway: small, self-contained (no external resources), clear.

Every login page says which rack it is for and which terminal's login it belongs to (`LoginContext`:
the host name the CLI sent with `/start` [ext], and when the login started).  The sign-in page stands
in for Google: one form per seeded user (a button), one with an email box, and a cancel form, all
posting `state`, `email` and `action` to `/oauth/authorize`.  The MFA page posts `state` and `code`
to `/auth/mfa`.  `ScriptedBrowser` relies on these field names.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

from .store import User

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;background:#f3f4f6;color:#111;margin:0}"
    "main{max-width:32em;margin:3em auto;padding:1.5em 2em;background:#fff;border-radius:8px;"
    "box-shadow:0 1px 4px #0002}"
    "h1{font-size:1.35em;margin:.1em 0 .7em}"
    ".rack{margin:0;color:#555;font-size:.9em}code{white-space:nowrap}"
    ".who{color:#333}.note{color:#555;font-size:.9em}"
    ".terminal{color:#555;font-size:.9em;border-top:1px solid #e5e7eb;margin-top:1.5em;padding-top:.8em}"
    ".error{color:#b91c1c;font-weight:600}"
    "form{margin:.4em 0}button{font:inherit;padding:.35em .9em;cursor:pointer}"
    ".accounts form{display:inline-block;margin:.15em .3em .15em 0}.accounts button{padding:.25em .6em}"
    ".role{color:#666;font-size:.85em}"
    "input{font:inherit;padding:.3em;width:12em}.close{font-weight:600}"
)


@dataclass(frozen=True)
class LoginContext:
    """What a login page says about the login: its rack, terminal, start time and user."""

    rack: str
    device_name: str | None = None
    started_at: float | None = None
    email: str | None = None


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(at))


def _terminal_line(ctx: LoginContext) -> str:
    login = "<code>rack-gateway login</code>"
    when = f"started at {_clock(ctx.started_at)}" if ctx.started_at is not None else "waiting"
    if ctx.device_name:
        return f"For the {login} on <b>{escape(ctx.device_name)}</b>, {when}."
    return f"For the {login} {when} in your terminal."


def _page(title: str, body: str, ctx: LoginContext | None, rack: str | None = None) -> str:
    rack = ctx.rack if ctx is not None else rack
    header = f'<p class="rack">Rack gateway · rack <b>{escape(rack)}</b></p>' if rack else ""
    footer = f'<p class="terminal">{_terminal_line(ctx)}</p>' if ctx is not None else ""
    full_title = f"{title} · rack {rack}" if rack else title
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(full_title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{header}<h1>{escape(title)}</h1>{body}{footer}</main></body></html>"
    )


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def sign_in_page(state: str, users: Iterable[User], ctx: LoginContext) -> str:
    accounts = "".join(
        f'<form method="post" action="/oauth/authorize">{_hidden("state", state)}{_hidden("action", "allow")}'
        f'<button type="submit" name="email" value="{escape(user.email)}">{escape(user.email)}'
        f' <span class="role">({escape(", ".join(user.roles))})</span></button></form>'
        for user in users
    )
    other = (
        f'<form method="post" action="/oauth/authorize">{_hidden("state", state)}{_hidden("action", "allow")}'
        '<label>Another account <input type="email" name="email" autocomplete="email"></label> '
        '<button type="submit">Continue</button></form>'
        f'<form method="post" action="/oauth/authorize">{_hidden("state", state)}{_hidden("action", "cancel")}'
        '<button type="submit">Cancel</button></form>'
    )
    intro = f"<p>Choose an account to continue to rack <b>{escape(ctx.rack)}</b>.</p>"
    note = '<p class="note">This page stands in for Google on the reference gateway.</p>'
    return _page("Sign in", f'{intro}<div class="accounts">{accounts}</div>{other}{note}', ctx)


def mfa_page(state: str, ctx: LoginContext, error: str | None = None) -> str:
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    who = f'<p class="who">Signed in as <b>{escape(ctx.email)}</b>.</p>' if ctx.email else ""
    form = (
        f'<form method="post" action="/auth/mfa">{_hidden("state", state)}'
        '<label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" autofocus></label> '
        '<button type="submit">Verify</button></form>'
    )
    return _page(
        "Multi-factor authentication",
        who + problem + "<p>Enter a code from your authenticator app or a backup code.</p>" + form,
        ctx,
    )


def done_page(ctx: LoginContext | None, rack: str | None = None) -> str:
    who = f" as <b>{escape(ctx.email)}</b>" if ctx is not None and ctx.email else ""
    body = (
        f'<p class="who">Signed in{who}.</p>'
        "<p>Login complete, return to your terminal: <code>rack-gateway login</code> there has the session.</p>"
        '<p class="close">You can close this tab.</p>'
    )
    return _page("Logged in", body, ctx, rack)


def error_page(
    text: str,
    ctx: LoginContext | None = None,
    *,
    cli_told: bool = True,
    rack: str | None = None,
    note: str | None = None,
) -> str:
    """A failed sign-in; `cli_told`: the CLI hears of the failure (False: a deployed gateway's CLI waits on);
    `note` (HTML, trusted): what to do next, instead of what `cli_told` implies."""
    if note is not None:
        after = note
    elif ctx is None:
        after = "Start again from your terminal with <code>rack-gateway login</code>."
    elif cli_told:
        after = "<code>rack-gateway login</code> in your terminal has stopped with this error."
    else:
        after = (
            "<code>rack-gateway login</code> in your terminal is still waiting: press Ctrl-C there, then run it again."
        )
    body = f'<p class="error" role="alert">{escape(text)}</p><p>{after}</p><p class="close">You can close this tab.</p>'
    return _page("Sign-in failed", body, ctx, rack)


def index_page(rack_name: str) -> str:
    return _page("Rack Gateway", f"<p>Reference gateway for rack <b>{escape(rack_name)}</b>.</p>", None, rack_name)
