"""The few HTML pages of the reference gateway, kept tiny and easy to parse.

The sign-in page stands in for Google: one form per seeded user (a button), one with an email box,
and a cancel form, all posting `state`, `email` and `action` to `/oauth/authorize`.  The MFA page
posts `state` and `code` to `/auth/mfa`.  `ScriptedBrowser` relies on these field names.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from .store import User

_STYLE = "body{font-family:sans-serif;max-width:36em;margin:3em auto}button{margin:.2em}"


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def sign_in_page(state: str, users: Iterable[User], rack_name: str) -> str:
    forms = []
    for user in users:
        forms.append(
            f'<form method="post" action="/oauth/authorize">{_hidden("state", state)}{_hidden("action", "allow")}'
            f'<button type="submit" name="email" value="{escape(user.email)}">Sign in as {escape(user.email)}'
            f" ({escape(', '.join(user.roles))})</button></form>"
        )
    forms.append(
        f'<form method="post" action="/oauth/authorize">{_hidden("state", state)}{_hidden("action", "allow")}'
        '<label>Email <input type="email" name="email" autocomplete="email"></label>'
        '<button type="submit">Continue</button></form>'
    )
    forms.append(
        f'<form method="post" action="/oauth/authorize">{_hidden("state", state)}{_hidden("action", "cancel")}'
        '<button type="submit">Cancel</button></form>'
    )
    intro = f"<p>Choose an account to continue to rack <b>{escape(rack_name)}</b>.</p>"
    return _page("Sign in to Rack Gateway", intro + "".join(forms))


def mfa_page(state: str, error: str | None = None) -> str:
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    form = (
        f'<form method="post" action="/auth/mfa">{_hidden("state", state)}'
        '<label>Authentication code <input name="code" inputmode="numeric" autocomplete="one-time-code">'
        '</label><button type="submit">Verify</button></form>'
    )
    return _page(
        "Multi-factor authentication",
        problem + "<p>Enter a code from your authenticator app or a backup code.</p>" + form,
    )


def done_page(text: str = "Login complete, return to your terminal.") -> str:
    return _page("Login complete", f"<p>{escape(text)}</p>")


def error_page(text: str) -> str:
    return _page("Sign-in failed", f'<p class="error" role="alert">{escape(text)}</p>')


def index_page(rack_name: str) -> str:
    return _page("Rack Gateway", f"<p>Reference gateway for rack <b>{escape(rack_name)}</b>.</p>")
