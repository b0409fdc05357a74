"""Turning login events into what the user sees: short progress lines, or JSON lines for scripts.

Progress goes to stderr so that stdout stays clean for scripts (``Logged in as ...``, tables and
``--json`` output go to stdout).  With many racks at once each line is prefixed with its rack.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TextIO

from rgw.login import events as ev


def describe(event: ev.LoginEvent) -> str | None:
    """The progress line for ``event`` (None: nothing to say)."""
    match event:
        case ev.GatewayReachable():
            return None
        case ev.BrowserOpening(auth_url=url):
            return f"Opening browser for authentication...\nIf it does not open, visit: {url}"
        case ev.BrowserOpened():
            return None
        case ev.BrowserUnavailable(auth_url=url):
            return f"Open this URL in your browser: {url}"
        case ev.Waiting(stage="mfa"):
            return "Waiting for MFA to be completed in the browser..."
        case ev.Waiting():
            return "Waiting for the browser sign-in to finish..."
        case ev.GatewayRetry(attempt=attempt, delay=delay, error=error):
            return f"Gateway unreachable ({error}) - retrying (attempt {attempt}, next in {delay:.1f} s)"
        case ev.CallbackReceived(ok=True, via="paste"):
            return "Got the pasted URL, finishing the login..."
        case ev.CallbackReceived():
            return None
        case ev.OAuthSucceeded():
            return "OAuth successful"
        case ev.MfaPrompt():
            return "MFA verification required."
        case ev.MfaCodeRejected(message=message, attempts_left=left):
            return f"{message} ({left} {'try' if left == 1 else 'tries'} left)"
        case ev.MfaVerified():
            return "MFA verified"
        case ev.CoalescedWait(pid=pid, auth_url=url):
            who = f"process {pid}" if pid else "another process"
            line = f"A login to this rack is already running in {who}; waiting for its session..."
            return line + (f"\nIts sign-in URL: {url}" if url else "")
        case ev.LoggedIn():
            return None  # the command prints "Logged in as" on stdout
    return None


class TextRenderer:
    def __init__(self, stream: TextIO, *, prefix_racks: bool = False) -> None:
        self.stream = stream
        self.prefix_racks = prefix_racks

    def __call__(self, event: ev.LoginEvent) -> None:
        text = describe(event)
        if text is None:
            return
        for line in text.splitlines():
            prefix = f"[{event.rack}] " if self.prefix_racks else ""
            print(prefix + line, file=self.stream, flush=True)


class JsonRenderer:
    """``--progress=json``: one JSON object a line: ``{"event": ..., "rack": ..., "time": ...}``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: ev.LoginEvent) -> None:
        payload = {"event": type(event).__name__, "time": round(time.time(), 3), **asdict(event)}
        print(json.dumps(payload, default=str), file=self.stream, flush=True)
