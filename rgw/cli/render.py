"""Turning login events into what the user sees: short progress lines, or JSON lines for scripts.

Progress goes to stderr so that stdout stays clean for scripts (``Logged in as ...``, tables and
``--json`` output go to stdout).  With many racks at once each line is prefixed with its rack.  On a
terminal the live block (``rgw.cli.live``) shows these lines above one status line per rack.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TextIO

from rgw.cli.style import retry_line, table
from rgw.login import events as ev
from rgw.text import printable

__all__ = [
    "JsonRenderer",
    "QrCodes",
    "TextRenderer",
    "UrlOnlyRenderer",
    "describe",
    "retry_line",
    "table",
]


#: The waiting line when rgw knows the account has MFA (``Waiting.mfa``), at a gateway that does not
#: report the MFA stage: the seed's "MFA verification required.", then where the code goes.
MFA_WAITING = {
    "terminal": "Enter {code} (here, or in the browser once signed in):",
    "given": "The code given with --mfa-code is sent once the sign-in in the browser is done.",
    "browser": "Enter the code in the browser once signed in.",
}
WAITING = "Waiting for the browser sign-in to finish"

STILL_WAITING = (
    "Still waiting for the sign-in after {elapsed}. If the browser showed an error, the likely causes are: "
    "your email domain is not allowed on this gateway, or the consent page was cancelled; if it is still "
    "open, finish signing in there."
)


def describe(event: ev.LoginEvent) -> str | None:
    """The progress line(s) for ``event`` (None: nothing to say).  Foreign text is made printable."""
    for family in (_browser_lines, _waiting_lines, _answer_lines, _resume_lines, _walk_lines):
        line = family(event)
        if line is not None:
            return line
    return None  # GatewayReachable, BrowserOpened, LoggedIn, LoginFailed, ...: the command says it


def _browser_lines(event: ev.LoginEvent) -> str | None:
    """Opening the browser, or what to do when it cannot be opened."""
    match event:
        case ev.BrowserOpening(auth_url=url):
            # The seed's line, with the URL on a line of its own that a terminal can select whole.
            return f"Opening browser for authentication...\nIf it does not open, visit: {printable(url)}"
        case ev.BrowserUnavailable(rack="", url_shown=True):
            return (
                "The browser could not be opened: open the page above yourself, or run the login with "
                "--no-browser for each rack's own sign-in URL."
            )
        case ev.BrowserUnavailable(url_shown=True):
            return "The browser could not be opened: open the URL above yourself."
        case ev.BrowserUnavailable(auth_url=url):
            return f"Open this URL in your browser: {printable(url)}"
        case ev.SignInElsewhere():
            return elsewhere_lines(event)
    return None


def elsewhere_lines(event: ev.SignInElsewhere, *, with_url: bool = True) -> str:
    """A sign-in that returns to another host than the rack's gateway: where, and how to open it
    (without ``with_url``, the walk's link stands for the URL: the one-tab page's URL was shown)."""
    there, gateway, url = printable(event.returns_to), printable(event.gateway), printable(event.auth_url)
    if event.trust == "first use":
        line = (
            f"The sign-in returns to {there}, not to this rack's gateway ({gateway}): "
            "first use, remembered for this rack from now on."
        )
    else:
        how = "remembered for this rack" if event.trust == "remembered" else "accepted, remembered from now on"
        line = f"The sign-in returns to {there} ({how}), not to this rack's gateway ({gateway})."
    click = f"It is not opened without a click: if {there} is this rack's gateway,"
    match event.then:
        case "walk":
            then = f"{click} sign in with its link on the one-tab page" + (f", or visit: {url}" if with_url else ".")
        case "enter":
            then = f"{click} press Enter to open it, or visit: {url}"
        case "url":
            then = f"Open this URL in your browser if {there} is this rack's gateway: {url}"
        case _:
            return line
    return line + "\n" + then


def _waiting_lines(event: ev.LoginEvent) -> str | None:
    """Waiting for the sign-in, and the gateway's retries meanwhile."""
    match event:
        case ev.Waiting(stage="mfa"):
            return "Waiting for MFA to be completed in the browser..."
        case ev.Waiting(mfa=mfa) if mfa in MFA_WAITING:
            code = "backup code" if event.method == "backup_code" else "TOTP code"
            return f"{WAITING}...\nMFA verification required.\n{MFA_WAITING[mfa].format(code=code)}"
        case ev.Waiting():
            return f"{WAITING} (and for MFA there, if your account requires it)..."
        case ev.StillWaiting(elapsed=elapsed, can_reopen=can_reopen):
            then = (
                "Press Enter to open the browser again, or Ctrl-C to give up."
                if can_reopen
                else "Run the login again to start over, or press Ctrl-C to give up."
            )
            return STILL_WAITING.format(elapsed=_duration(elapsed)) + "\n" + then
        case ev.GatewayRetry(attempt=attempt, delay=delay, error=error, kind=kind, until_deadline=patient):
            return retry_line(kind, printable(error), attempt, delay) + ("; Ctrl-C gives up" if patient else "")
        case ev.CoalescedWait(pid=pid, other_url=other) if other:
            who = f"process {pid}" if pid else "another process"
            where = f"at another gateway ({printable(other)})"
            return f"A login to this rack {where} is running in {who}; waiting for it to end, then logging in here..."
        case ev.CoalescedWait(pid=pid, auth_url=url):
            who = f"process {pid}" if pid else "another process"
            line = f"A login to this rack is already running in {who}; waiting for its session..."
            return line + (f"\nIts sign-in URL: {printable(url)}" if url else "")
    return None


def _answer_lines(event: ev.LoginEvent) -> str | None:
    """What came back: a pasted URL, the OAuth result, the MFA dialog."""
    match event:
        case ev.CallbackReceived(ok=True, via="paste"):
            return "Got the pasted URL, finishing the login..."
        case ev.CallbackReceived(ok=False, via="paste"):
            return "The pasted URL says the sign-in failed; asking the gateway..."
        case ev.PasteIgnored(reason=reason):
            return f"Ignored that line: {printable(reason)}."
        case ev.OAuthSucceeded():
            return "OAuth successful"
        case ev.MfaPrompt():
            return "MFA verification required."
        case ev.MfaCodeRejected(attempts_left=left, typed=True):
            tries = f"{left} {'try' if left == 1 else 'tries'} left"
            return f"Wrong code ({tries}): type a new code here, or enter it in the browser."
        case ev.MfaCodeEarly():
            return (
                "Not verified: finish signing in with Google in the browser first, then type the code again "
                "(once its MFA page shows)."
            )
        case ev.MfaCodeUnused(seconds=seconds):
            return (
                f"The code given with --mfa-code was not taken within {seconds:.0f} s (the sign-in was not "
                "finished in time) and is no longer sent: enter a code in the browser."
            )
        case ev.MfaCodeRejected(message=message, attempts_left=left):
            return f"{printable(message)} ({left} {'try' if left == 1 else 'tries'} left)"
        case ev.MfaVerified():
            return "MFA verified"
    return None  # a loopback callback: quiet, the gateway's answer follows


def _resume_lines(event: ev.LoginEvent) -> str | None:
    """A login an interrupted run left, taken up again (or dropped)."""
    match event:
        case ev.LoginResumed(started_at=started, finished=True):
            return f"Resumed the login started at {clock_time(started)}"
        case ev.LoginResumed(started_at=started, stage="mfa"):
            return f"Resuming the login started at {clock_time(started)}: browser sign-in done, MFA still needed."
        case ev.LoginResumed(started_at=started, auth_url=url, can_reopen=reopen):
            return (
                f"Resuming the login started at {clock_time(started)}: its sign-in is not finished yet.\n"
                f"Finish it in the browser, or visit: {printable(url)}"
                + ("\nPress Enter to open the browser." if reopen else "")
            )
        case ev.ResumeDiscarded(started_at=started):
            return f"The gateway no longer knows the login started at {clock_time(started)}; starting a new one."
    return None  # ReplacedSessionRevoked: quiet, the new session works and the old one is gone


def _walk_lines(event: ev.LoginEvent) -> str | None:
    """One browser tab for many racks."""
    match event:
        case ev.WalkOpening(url=url, racks=racks):
            return (
                f"Opening one browser tab to sign in to {racks} racks...\nIf it does not open, visit: {printable(url)}"
            )
        case ev.WalkAvailable(url=url, racks=racks):
            return f"To sign in to all {racks} racks in one browser tab on this machine, visit: {printable(url)}"
        case ev.WalkQueued(stalled=True, auth_url=url):
            return (
                "The browser tab has not come back from this rack's sign-in: if it stopped, sign in with "
                f"its link on the one-tab page, or visit: {printable(url)}"
            )
        case ev.WalkQueued(returns=False, auth_url=url):
            return (
                "This rack's gateway does not send the browser back: sign in with its link on the "
                f"one-tab page, or visit: {printable(url)}"
            )
        case ev.WalkProgress(finished=finished, failed=failed, total=total):
            return f"{finished} of {total} racks finished" + (f", {failed} failed." if failed else ".")
    return None  # WalkQueued that returns: the tab comes to this rack's sign-in on its own


def still_waiting_all(event: ev.StillWaiting) -> str:
    """``StillWaiting`` said once for a multi-rack login (rather than once a rack)."""
    return (
        STILL_WAITING.replace("the sign-in after", "sign-ins after").format(elapsed=_duration(event.elapsed))
        + " Racks still waiting are marked in the list below; Ctrl-C gives up."
    )


def clock_time(epoch: float) -> str:
    """``14:03``: a wall-clock time of day, in the local time zone."""
    return time.strftime("%H:%M", time.localtime(epoch))


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"


def sign_in_url(event: ev.LoginEvent) -> str | None:
    """The URL the user signs in at, when ``event`` is the one that shows it first."""
    match event:
        case ev.BrowserOpening(auth_url=url) | ev.BrowserUnavailable(auth_url=url, url_shown=False):
            return url
        case ev.CoalescedWait(auth_url=url) if url:
            return url
        case ev.SignInElsewhere(auth_url=url, then="enter" | "url"):
            return url
    return None


class QrCodes:
    """``login --qr``: the lines of each rack's sign-in URL as a QR code, once per rack.

    ``rows``: the terminal's height (None: not a terminal, nothing scrolls out of sight).
    """

    def __init__(self, columns: Callable[[], int], rows: Callable[[], int | None] = lambda: None) -> None:
        self.columns = columns
        self.rows = rows
        self.shown: set[str] = set()

    def lines(self, event: ev.LoginEvent) -> list[str]:
        url = sign_in_url(event)
        if url is None or event.rack in self.shown:
            return []
        self.shown.add(event.rack)
        from rgw.cli.qr import qr_block

        return qr_block(url, self.columns(), self.rows())


class TextRenderer:
    def __init__(self, stream: TextIO, *, prefix_racks: bool = False, qr: QrCodes | None = None) -> None:
        self.stream = stream
        self.prefix_racks = prefix_racks
        self.qr = qr

    def __call__(self, event: ev.LoginEvent) -> None:
        text = describe(event)
        if text is None:
            return
        for line in text.splitlines():
            prefix = f"[{printable(event.rack)}] " if self.prefix_racks and event.rack else ""
            print(prefix + line, file=self.stream, flush=True)
        for line in self.qr.lines(event) if self.qr is not None else []:
            print(line, file=self.stream, flush=True)


class UrlOnlyRenderer:
    """``login --print-url-only``: the sign-in URL alone on ``stream`` (stdout), once, for wrappers."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.printed = False

    def __call__(self, event: ev.LoginEvent) -> None:
        url = sign_in_url(event)
        if url is not None and not self.printed:
            self.printed = True
            print(printable(url), file=self.stream, flush=True)


class JsonRenderer:
    """``--progress=json``: one JSON object a line: ``{"event": ..., "rack": ..., "time": ...}``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: ev.LoginEvent) -> None:
        payload = {"event": type(event).__name__, "time": round(time.time(), 3), **asdict(event)}
        print(json.dumps(payload, default=str), file=self.stream, flush=True)
