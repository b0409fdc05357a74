"""The live block on a terminal: one status line per rack under the lines worth keeping.

``LiveRenderer`` owns stderr while a login runs: every line for it (a kept progress line, a notice,
a ``-v`` log record) goes through ``write_above``, which clears the block, writes the line and draws
the block again under it, so nothing written is ever erased by a redraw.  Each line of the block
takes exactly one terminal row (it is cut to the width), so the block can be cleared exactly; it
never grows past the terminal's height.

With many racks a line leads with the rack's state (``queued``, ``contacting``, ``retrying``,
``waiting``, ``MFA``, ``verified``, ``logged in``, ``failed``), then its name and a short detail.  On a
terminal a rack whose sign-in is a link on the one-tab page says so in its line (the page's one URL
was printed once, above); ``full_urls`` (``--no-browser``, stdout not a terminal) prints each rack's
own URL as well.  A failure is said once, in its line (the command's table follows).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TextIO

from rgw.cli.render import MFA_WAITING, QrCodes, clock_time, describe, elsewhere_lines, still_waiting_all
from rgw.cli.style import GREEN, RED, fit, paint, width
from rgw.login import events as ev
from rgw.text import printable

__all__ = ["LINK", "LiveRenderer", "offers_link", "rack_state"]

#: The detail of a rack whose sign-in is a link on the one-tab page (whose URL was printed once).
LINK = "sign in with its link on the one-tab page"
#: Columns of the state word ("contacting" is the longest) and, at most, of a rack's name.
STATE_WIDTH = 10
NAME_WIDTH = 24
#: Seconds a retry is shown past its wait: no next failure by then, and the rack's line says again
#: what it said before (the retry went through; an answer that brings no news emits nothing).
RETRY_SHOWN = 5.0


def rack_state(event: ev.LoginEvent) -> tuple[str, str | None] | None:
    """A multi-rack login's line for ``event``'s rack: its state and detail (a detail of None keeps
    the one the rack has); None when the event changes neither."""
    match event:
        case ev.LoginStarted():
            return ("contacting", "")
        case ev.GatewayRetry(attempt=attempt, delay=delay, error=error, kind=kind):
            what = "rate limited" if kind == "rate_limited" else printable(error)
            return ("retrying", f"{what} (attempt {attempt}, next in {delay:.1f} s)")
        case ev.GatewayReachable():
            return ("waiting", "")
        case ev.WalkQueued(returns=True, stalled=False):
            return ("waiting", "signing in in the one browser tab")
        case ev.WalkQueued() | ev.SignInElsewhere(then="walk"):
            return ("waiting", LINK)
        case ev.BrowserOpening():
            return ("waiting", "browser opened")
        case ev.BrowserUnavailable():
            return ("waiting", "open its URL (above) in a browser")
        case ev.LoginResumed(started_at=started, finished=False):
            return ("waiting", f"resumed the login started at {clock_time(started)}")
        case ev.CoalescedWait(pid=pid, other_url=other):
            who = f"process {pid}" if pid else "another process"
            return ("waiting", f"for the login in {who}" + (" (another gateway)" if other else ""))
        case ev.Waiting(stage="mfa"):
            return ("MFA", "finish MFA in the browser")
        case ev.Waiting():
            return ("waiting", None)
        case ev.OAuthSucceeded():
            return ("waiting", "OAuth successful")
        case ev.MfaPrompt():
            return ("MFA", "MFA verification required")
        case ev.MfaVerified():
            return ("verified", "MFA verified")
        case ev.LoggedIn(email=email):
            return ("logged in", printable(email))
        case ev.LoginFailed(message=message):
            return ("failed", printable(message))
    if offers_link(event):
        return ("waiting", LINK)
    return None


def offers_link(event: ev.LoginEvent) -> bool:
    """An event not named above that hands the user a rack's sign-in URL (its ``auth_url``) while
    the one-tab page lists the rack's link: on a terminal the rack's line points to the link."""
    return bool(event.rack) and isinstance(getattr(event, "auth_url", None), str)


class LiveRenderer:
    """On a terminal: lines worth keeping scroll above a live block of one status line per rack,
    each with a spinner and the seconds it has been going; a finished rack shows ``✓`` when it
    logged in and ``✗`` when its login failed, a queued one ``·``.

    Worth keeping: the sign-in URL (to copy), and for a single rack the seed's lines (``OAuth
    successful``, ``MFA verification required.``, ``MFA verified``).  While the terminal asks for an
    MFA code the block is cleared and not redrawn, so the prompt stays intact.
    """

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(
        self,
        stream: TextIO,
        racks: list[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] | None = None,
        rows: Callable[[], int] | None = None,
        color: bool = False,
        qr: QrCodes | None = None,
        full_urls: bool = False,
    ) -> None:
        self.stream = stream
        self.columns = columns or _columns
        self.rows = rows or _rows
        self.color = color
        self.qr = qr
        self.multi = len(racks) > 1
        self.full_urls = full_urls
        self.clock = clock
        self.started = {rack: clock() for rack in racks}
        #: A single rack's line; with many, each rack's state and detail.
        self.status = dict.fromkeys(racks, "contacting the gateway...")
        self.state = dict.fromkeys(racks, ("queued", ""))
        #: A retrying rack's line before its retries, and until when the retry is shown.
        self.before_retry: dict[str, tuple[tuple[str, str], float]] = {}
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.drawn = 0
        self.frame = 0
        self.paused = False
        self.closed = False
        self.said_still_waiting = False
        #: Events come from the loop, log records from any thread: one writer at a time.
        self.lock = threading.RLock()

    def __call__(self, event: ev.LoginEvent) -> None:
        with self.lock:
            keep = self._kept(event)
            if self.qr is not None:
                keep = [*keep, *self.qr.lines(event)]  # scrolls above the block, whole
            self._clear()
            for line in keep:
                self.stream.write(line + "\n")
            self._track(event)
            self._draw()

    def write_above(self, text: str) -> None:
        """A line (a log record, a notice) above the block, which is redrawn under it."""
        with self.lock:
            self._clear()
            self.stream.write(text + "\n")
            self._draw()

    def _kept(self, event: ev.LoginEvent) -> list[str]:
        """The lines that scroll above the block for ``event`` (a rack's, prefixed with its name)."""
        if self.multi and not self.full_urls:
            match event:
                case ev.WalkQueued(stalled=True):  # the tab stopped on its way: its URL too, to copy
                    return self._prefixed(event, self._worth_keeping(event))
                case ev.WalkQueued() | ev.CoalescedWait(other_url=None):
                    return []  # its link is on the one-tab page; its line says so
                case ev.SignInElsewhere(then="walk"):
                    return self._prefixed(event, elsewhere_lines(event, with_url=False).splitlines())
                case ev.StillWaiting():  # said once for the whole login, not once a rack
                    first, self.said_still_waiting = not self.said_still_waiting, True
                    return [still_waiting_all(event)] if first else []
            if rack_state(event) == ("waiting", LINK):
                return []  # any other event offering a rack's link: its line says so
        return self._prefixed(event, self._worth_keeping(event))

    def _prefixed(self, event: ev.LoginEvent, lines: list[str]) -> list[str]:
        prefix = f"[{printable(event.rack)}] " if self.multi and event.rack else ""
        return [prefix + line for line in lines]

    def _worth_keeping(self, event: ev.LoginEvent) -> list[str]:
        match event:
            case ev.BrowserOpening() | ev.BrowserUnavailable() | ev.StillWaiting() | ev.PasteIgnored():
                return (describe(event) or "").splitlines()
            case ev.SignInElsewhere() | ev.CoalescedWait() | ev.MfaCodeRejected() | ev.MfaCodeEarly():
                return (describe(event) or "").splitlines()
            case ev.LoginResumed() | ev.ResumeDiscarded() | ev.MfaCodeUnused():
                return (describe(event) or "").splitlines()
            case ev.WalkOpening() | ev.WalkAvailable() | ev.WalkQueued():
                return (describe(event) or "").splitlines()
            case ev.Waiting(stage="browser", mfa=mfa) if mfa in MFA_WAITING and not self.multi:
                return (describe(event) or "").splitlines()[1:]  # the seed's lines; the status stays one line
            case ev.OAuthSucceeded() | ev.MfaPrompt() | ev.MfaVerified() if not self.multi:
                return [describe(event) or ""]
        if offers_link(event):  # an event that hands the user a rack's sign-in URL: the URL to copy
            return (describe(event) or "").splitlines()
        return []  # a failure is said in the block once (then in the command's table or Error: line)

    def _track(self, event: ev.LoginEvent) -> None:
        """The block's view of ``event``: the rack's line, and whether a code is being typed."""
        if event.rack in self.status:
            if isinstance(event, ev.LoginStarted):
                self.started[event.rack] = self.clock()
            self._track_state(event)
            status = _single_status(event)
            if status is not None:
                self.status[event.rack] = status
        if isinstance(event, ev.MfaPrompt) or (
            isinstance(event, ev.Waiting) and event.mfa == "terminal" and not self.multi
        ):
            self.paused = True  # the user types a code: a redrawn block would wipe what is typed
        elif isinstance(event, ev.MfaVerified | ev.LoggedIn | ev.LoginFailed):
            self.paused = False
        if isinstance(event, ev.LoggedIn | ev.LoginFailed):
            self.done.add(event.rack)
        if isinstance(event, ev.LoginFailed):
            self.failed.add(event.rack)
        elif isinstance(event, ev.LoggedIn):
            self.failed.discard(event.rack)

    def _track_state(self, event: ev.LoginEvent) -> None:
        found = rack_state(event)
        if found is None:
            return
        rack, (state, detail) = event.rack, found
        before = self.before_retry.pop(rack, None)
        current = before[0] if before is not None else self.state[rack]
        if isinstance(event, ev.GatewayRetry):
            self.before_retry[rack] = (current, self.clock() + event.delay + RETRY_SHOWN)
        self.state[rack] = (state, current[1] if detail is None else detail)

    def _shown_state(self, rack: str) -> tuple[str, str]:
        before = self.before_retry.get(rack)
        if before is not None and self.clock() > before[1]:
            return before[0]
        return self.state[rack]

    def _clear(self) -> None:
        if self.drawn:
            # Up to the first line of the block, then clear to the end of the screen.
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _draw(self) -> None:
        if self.paused or self.closed:
            self.stream.flush()
            return
        columns = max(20, self.columns() - 1)
        lines = self._rack_lines(columns) if self.multi else self._single_lines(columns)
        for line in lines:  # one terminal row each, or the block could not be cleared exactly
            self.stream.write(line + "\n")
        self.drawn = len(lines)
        self.stream.flush()

    def _single_lines(self, columns: int) -> list[str]:
        lines = []
        for rack, status in self.status.items():
            if rack in self.done:
                continue
            spinner = self.FRAMES[self.frame % len(self.FRAMES)]
            # The timer leads, so a narrow terminal cuts the status, never the seconds.
            elapsed = f"{self.clock() - self.started[rack]:3.0f} s  "
            lines.append(f"{spinner} {elapsed}{fit(status, columns - 2 - len(elapsed))}")
        return lines

    def _rack_lines(self, columns: int) -> list[str]:
        """The summary, then a line per rack: state, name, detail, cut to ``columns``; within the
        terminal's height (logged-in racks leave first: the summary counts them)."""
        names = min(NAME_WIDTH, max(width(printable(rack)) for rack in self.state))
        entries: list[tuple[str, str]] = []
        for rack in self.state:
            state, detail = self._shown_state(rack)
            if rack in self.done:
                glyph = self.style("✗", RED) if rack in self.failed else self.style("✓", GREEN)
            elif state == "queued":
                glyph = "·"
            else:
                glyph = self.FRAMES[self.frame % len(self.FRAMES)]
                detail = f"{self.clock() - self.started[rack]:3.0f} s  {detail}"
            name = fit(printable(rack), names)
            text = f"{state:<{STATE_WIDTH}}  {name}{' ' * (names - width(name))}  {detail}".rstrip()
            entries.append((rack, f"{glyph} {fit(text, columns - 2)}"))
        summary = self._summary()
        room = max(3, self.rows() - 1) - (1 if summary else 0)
        if len(entries) > room:
            entries = [(r, line) for r, line in entries if r not in self.done or r in self.failed]
        lines = [line for _, line in entries]
        if len(lines) > room:
            lines = [*lines[: room - 1], f"  … {len(lines) - room + 1} more racks"]
        return [*([summary] if summary else []), *lines]

    def _summary(self) -> str | None:
        """``3 of 10 racks finished, 1 failed.``: the block's first line once a rack finished."""
        if not self.done:
            return None
        failed = f", {len(self.failed)} failed." if self.failed else "."
        return f"{len(self.done)} of {len(self.state)} racks finished{failed}"

    def style(self, text: str, code: str) -> str:
        return paint(text, code, color=self.color)

    async def animate(self, interval: float = 0.1) -> None:
        """Redraw the block every ``interval`` seconds (spinner and elapsed time) until cancelled."""
        import anyio

        try:
            while True:
                await anyio.sleep(interval)
                self.tick()
        finally:
            self.close()

    def tick(self) -> None:
        """The spinner's next frame: the block drawn again (not while a code is typed)."""
        with self.lock:
            self.frame += 1
            if not self.paused:
                self._clear()
                self._draw()

    def close(self) -> None:
        """Clear the block for good: later lines are written as they come."""
        with self.lock:
            self._clear()
            self.closed = True
            self.stream.flush()


def _single_status(event: ev.LoginEvent) -> str | None:
    """A single rack's status line for ``event`` (None: unchanged)."""
    match event:
        case ev.CoalescedWait():
            return "waiting for the login in another rack-gateway process"
        case ev.Waiting(stage="browser", mfa=mfa) if mfa in MFA_WAITING:
            return "waiting for the browser sign-in (MFA required)"
        case ev.LoggedIn(email=email):
            return f"logged in as {printable(email)}"
        case ev.LoginFailed(message=message):
            return f"failed: {printable(message)}"
        case ev.BrowserOpening() | ev.BrowserUnavailable() | ev.StillWaiting() | ev.PasteIgnored():
            return None
        case ev.SignInElsewhere() | ev.MfaCodeRejected() | ev.LoginResumed() | ev.ResumeDiscarded():
            return None
        case ev.MfaCodeEarly() | ev.MfaCodeUnused() | ev.WalkOpening() | ev.WalkAvailable() | ev.WalkQueued():
            return None
        case ev.WalkProgress():
            return None
    return describe(event)


def _columns() -> int:
    try:
        return os.get_terminal_size(2).columns
    except OSError:
        return 80


def _rows() -> int:
    try:
        return os.get_terminal_size(2).lines
    except OSError:
        return 24
