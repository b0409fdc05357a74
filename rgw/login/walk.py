"""One browser tab for a multi-rack login: the walk through every rack's sign-in.

A multi-rack login opens the browser once, on a page the loopback listener serves on a path of its
own (``LoginWalk.path``, as unguessable as the callback's).  Asking for the page gets a 302 to the
first rack whose sign-in is ready; that rack's gateway (one with the loopback extension) sends the
browser back to the listener when its part ends, and the listener answers that hit with a small page
(``rgw.login.listener``'s hop page) that moves on to the next rack's sign-in, and, when none is left, back to the page,
with ``<meta http-equiv=refresh content="0;url=...">``: it works in any browser, without script, and
starts a new navigation, so the redirects of many racks never add up to one chain (Chromium gives up
after 20 redirects: ERR_TOO_MANY_REDIRECTS, reached around the fifth rack when the identity provider
signs in without a click).

A hop rack the tab was sent to but has not come back from within ``STALL_WAIT`` seconds (the tab may
have stopped on the way, or been closed) is offered with its link, in a new tab, as a rack whose
gateway does not send the browser back is; ``watch`` tells ``on_stall`` so the terminal shows its URL.

Racks whose gateway cannot send the browser back (a deployed gateway; a login taken up from an
interrupted one; a rack another process is logging in to) are listed on the page with their sign-in
link, and so is a sign-in that returns elsewhere than its rack's gateway (``rgw.login.returns``):
the tab never goes there without the user's click.  While a rack waits, its row says which host its
sign-in is at and where it returns to.  The page lists every rack with its state (queued, starting,
waiting, done, failed); a small script, allowed by its hash and nothing else, refreshes the list
from ``<path>/status`` (the same printable text) once a second without reloading.  Without script
the page refreshes itself (``<meta http-equiv=refresh>``).

The listener never sends the browser anywhere but to an ``auth_url`` a rack's own gateway returned
from ``/auth/cli/start`` (checked by ``rgw.urls.browser_url`` when it arrived, and returning to that
rack's gateway or naming no place: ``rgw.login.returns``) or to the page: a hop
is taken only for a callback whose state is one of the walk's (compared in constant time), and only
once per state; a second hit for the same state goes back to the page.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from rgw.text import find_secret, printable
from rgw.urls import origin_host

__all__ = ["LoginWalk", "WalkPage"]

#: Seconds a callback's hop waits for a rack still talking to its gateway to be ready (after
#: that the tab goes to the page, which comes back for it).
HOP_WAIT = 3.0
#: Seconds between reloads of the page while a rack is queued or starting.
REFRESH = 3.0
#: Seconds the page waits for the same before it shows the list (which refreshes itself meanwhile).
PAGE_WAIT = 2.0
#: Seconds the last callback waits for its rack's login to finish before the tab goes to the list.
SETTLE_WAIT = 3.0
#: Seconds after a view of the page within which the tab counts as open (its script polls each second).
LIVE_TAB = 5.0
#: Seconds after the tab was sent to a hop rack's sign-in before, its callback not back, its link is offered.
STALL_WAIT = 10.0

_STATUS_LABEL = {
    "queued": "queued",
    "starting": "contacting the gateway",
    "waiting": "waiting for the sign-in",
    "done": "logged in",
    "failed": "failed",
}

WALK_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;background:#f3f4f6;color:#111;margin:0}"
    "main{max-width:40em;margin:3em auto;padding:1.5em 2em;background:#fff;border-radius:8px;"
    "box-shadow:0 1px 4px #0002}h1{font-size:1.35em;margin:.1em 0 .7em}.brand{margin:0;color:#555;font-size:.9em}"
    "table{border-collapse:collapse;width:100%;margin:1em 0}td{padding:.35em .5em;border-top:1px solid #e5e7eb;"
    "vertical-align:top}td.rack{font-weight:600;word-break:break-all}td.detail{color:#555;word-break:break-word}"
    "td.where{color:#555;font-size:.85em;word-break:break-word}"
    "tr.done td.state{color:#15803d}tr.failed td.state{color:#b91c1c}a.go{font-weight:600}"
    "a.go[hidden]{display:none}.summary{font-weight:600}code{white-space:nowrap}"
)

# Reads <path>/status once a second and updates the list.  Text goes in with textContent only; a
# link is set only to an http(s) URL.  Allowed by hash: the page's policy forbids every other script.
WALK_SCRIPT = (
    "(function(){var u=location.pathname+'/status';"
    "function set(row,sel,text){var e=row.querySelector(sel);if(e)e.textContent=text;}"
    "function tick(){fetch(u,{cache:'no-store'}).then(function(r){return r.json();}).then(function(d){"
    "d.racks.forEach(function(r,i){var row=document.getElementById('r'+i);if(!row)return;"
    "row.className=r.status;set(row,'.state',r.label);set(row,'.detail',r.detail);set(row,'.where',r.where);"
    "var a=row.querySelector('a.go');if(!a)return;"
    "if(r.url&&/^https?:\\/\\//.test(r.url)){a.href=r.url;a.hidden=false;"
    "if(r.new_tab){a.target='_blank';a.rel='noopener noreferrer';}else{a.removeAttribute('target');}}"
    "else{a.hidden=true;}});"
    "set(document,'#summary',d.summary);if(!d.finished)setTimeout(tick,1000);"
    "}).catch(function(){set(document,'#summary','The terminal has stopped: this list no longer updates.');});}"
    "setTimeout(tick,1000);})();"
)


def _digest(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


WALK_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_digest(WALK_STYLE)}'; script-src 'sha256-{_digest(WALK_SCRIPT)}'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class WalkPage:
    """What the listener sends for a request on the walk's path: a page, the list as JSON, or a 302."""

    status: int
    body: bytes = b""
    location: str | None = None
    content_type: str = "text/html; charset=utf-8"
    policy: str = WALK_POLICY
    #: It shows every rack finished.
    final: bool = False


class _Entry:
    def __init__(self, index: int, rack: str) -> None:
        self.index = index
        self.rack = rack
        #: queued (no parallel slot yet), starting (/start), waiting, done or failed.
        self.status = "queued"
        #: hop (its gateway sends the browser back), link (it cannot), elsewhere (another process).
        self.kind: str | None = None
        self.auth_url: str | None = None
        #: The origin the sign-in returns to (None: it names none); ``elsewhere``: not the rack's gateway.
        self.returns_to: str | None = None
        self.elsewhere = False
        self.state: str | None = None
        self.detail = ""
        #: The walk sent the browser to this rack's sign-in (or its callback came back).
        self.visited = False
        #: Its callback came back and was answered with a hop.
        self.hopped = False
        #: When the walk last sent the tab to its sign-in.
        self.sent_at: float | None = None
        #: The tab did not come back from its sign-in in time: its link is offered (in a new tab).
        self.stalled = False

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def label(self) -> str:
        if self.status == "waiting" and self.kind == "elsewhere":
            return "another rack-gateway process is signing in"
        if self.status == "waiting" and self.kind == "link":
            return "sign in with the link"
        if self.status == "waiting" and self.stalled:
            return "the tab did not come back: sign in with the link"
        return _STATUS_LABEL[self.status]

    @property
    def new_tab(self) -> bool:
        """Its link opens in a new tab: the walk's tab does not go there by itself (any more)."""
        return self.kind != "hop" or self.stalled

    def link(self) -> str | None:
        return self.auth_url if self.status == "waiting" and self.auth_url else None

    def where(self) -> str:
        """Which host the sign-in is at, and where it returns to (while the rack waits for it)."""
        if not self.auth_url or self.status != "waiting":
            return ""
        text = f"Sign-in at {origin_host(self.auth_url)}"
        if self.returns_to is not None:
            text += f", returns to {origin_host(self.returns_to)}"
        if self.elsewhere:
            text += ", not to this rack's gateway: sign in there only if that is where you expect it"
        return text


class LoginWalk:
    """The racks of one multi-rack login, in the order given, and where the shared tab goes next.

    The coordinator and the logins tell it what happens (``starting``, ``offer``, ``elsewhere``,
    ``finish``); the listener asks it where to send the browser (``after_callback``, ``respond``).
    Everything runs on one event loop; a change wakes whatever waits for a hop.
    """

    def __init__(
        self,
        racks: Sequence[str],
        *,
        path: str,
        terminal: str,
        parallel: int = 8,
        hop_wait: float = HOP_WAIT,
        page_wait: float = PAGE_WAIT,
        settle_wait: float = SETTLE_WAIT,
        stall_wait: float = STALL_WAIT,
        on_stall: Callable[[str, str], object] | None = None,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        if not path.startswith("/") or len(path) < 16:
            raise ValueError("the walk needs a long random path")
        self.path = path
        self.terminal = terminal
        #: Logins at a time (``--parallel``): a queued rack starts only when one of them ends.
        self.parallel = max(1, parallel)
        self.hop_wait = hop_wait
        self.page_wait = page_wait
        self.settle_wait = settle_wait
        self.stall_wait = stall_wait
        #: Told (rack, auth_url) when a hop rack's link is offered because the tab did not come back.
        self.on_stall = on_stall
        self.clock = clock
        self._entries = [_Entry(i, rack) for i, rack in enumerate(dict.fromkeys(racks))]
        self._by_rack = {e.rack: e for e in self._entries}
        self._changed = anyio.Event()
        self._final_view = anyio.Event()
        self._last_view: float | None = None

    # -- what the logins tell it --------------------------------------------------------------

    def starting(self, rack: str) -> None:
        """The rack's login has its parallel slot and is asking its gateway for a login state."""
        entry = self._by_rack[rack]
        if entry.status == "queued":
            entry.status = "starting"
            self._change()

    def offer(
        self, rack: str, *, auth_url: str, state: str, hop: bool, returns_to: str | None = None, elsewhere: bool = False
    ) -> None:
        """The rack's sign-in is ready at ``auth_url``; ``hop``: its gateway sends the browser back.

        ``returns_to``: the origin the sign-in returns to; ``elsewhere``: not the rack's gateway, so
        it is a link, never a hop.
        """
        entry = self._by_rack[rack]
        entry.kind = "hop" if hop and not elsewhere else "link"
        entry.auth_url, entry.state = auth_url, state
        entry.returns_to, entry.elsewhere = returns_to, elsewhere
        entry.status = "waiting"
        entry.visited = entry.hopped = entry.stalled = False
        entry.sent_at = None
        self._change()

    def elsewhere(self, rack: str, auth_url: str | None) -> None:
        """Another process is logging in to the rack; this one waits for its session."""
        entry = self._by_rack[rack]
        if entry.finished:
            return
        entry.kind, entry.auth_url, entry.status = "elsewhere", auth_url, "waiting"
        entry.returns_to, entry.elsewhere = None, False
        self._change()

    def finish(self, rack: str, *, ok: bool, detail: str) -> None:
        entry = self._by_rack[rack]
        entry.status = "done" if ok else "failed"
        entry.detail = detail
        self._change()

    # -- what the terminal and the page show --------------------------------------------------

    @property
    def total(self) -> int:
        return len(self._entries)

    @property
    def finished(self) -> bool:
        return all(e.finished for e in self._entries)

    def counts(self) -> tuple[int, int]:
        """(racks finished, of which failed)."""
        return sum(e.finished for e in self._entries), sum(e.status == "failed" for e in self._entries)

    def summary(self) -> str:
        finished, failed = self.counts()
        if finished < self.total:
            tail = f", {failed} failed" if failed else ""
            return f"{finished} of {self.total} racks finished{tail}."
        if failed:
            return (
                f"All {self.total} racks finished: {failed} failed (the terminal has the details). "
                "You can close this tab."
            )
        return f"Logged in to all {self.total} racks. You can close this tab."

    def tab_is_open(self) -> bool:
        """A tab is following the walk: it is at a rack's sign-in whose callback has not come back
        yet, or the page, its list or a callback reached the listener a moment ago."""
        if any(e.kind == "hop" and e.visited and not e.hopped for e in self._entries):
            return True
        return self._last_view is not None and self.clock() - self._last_view < LIVE_TAB

    async def final_view(self) -> None:
        """Return once the page or its list has been sent with every rack finished."""
        await self._final_view.wait()

    async def watch(self) -> None:
        """Offer the link of each hop rack the tab was sent to and has not come back from within
        ``stall_wait`` seconds (and tell ``on_stall``, once a rack); runs until cancelled."""
        while True:
            changed = self._changed
            due = min((at for at in map(self._stall_due, self._entries) if at is not None), default=None)
            now = self.clock()
            if due is not None and due <= now:
                for entry in self._entries:
                    at = self._stall_due(entry)
                    if at is not None and at <= now:
                        self._stall(entry)
                continue
            with anyio.move_on_after(math.inf if due is None else due - now):
                await changed.wait()

    # -- what the listener asks ---------------------------------------------------------------

    def owns(self, state: str) -> bool:
        return self._match(state) is not None

    async def after_callback(self, state: str) -> str | None:
        """Where to send the browser a walked rack's gateway sent back (None: not one of the walk's)."""
        entry = self._match(state)
        if entry is None:
            return None
        self._last_view = self.clock()
        if entry.hopped:
            return self.path  # the same callback again (reload, back button): to the page, no second hop
        entry.hopped = entry.visited = True
        self._change()
        location = await self._next_hop(self.hop_wait, after=entry)
        if location is None:
            # Back to the list: let the logins redeem the sign-ins first, so that the list shows them.
            with anyio.move_on_after(self.settle_wait):
                while not all(e.finished for e in self._entries if e.hopped):
                    await self._changed.wait()
        return location or self.path

    async def respond(self, rest: str) -> WalkPage | None:
        """The answer for ``<path><rest>``: the page (or a hop), the list as JSON; None: no such page."""
        if rest == "":
            location = await self._next_hop(self.page_wait)
            if location is not None:
                return WalkPage(302, location=location)
            page = WalkPage(200, self._page(), final=self.finished)
        elif rest == "/status":
            page = WalkPage(200, self._status_json(), content_type="application/json", final=self.finished)
        else:
            return None
        return page

    # -- inside -------------------------------------------------------------------------------

    def _stall_due(self, entry: _Entry) -> float | None:
        """When ``entry``'s link is to be offered (None: not while it stands as it does)."""
        if entry.kind != "hop" or entry.status != "waiting" or entry.stalled or entry.hopped:
            return None
        return None if entry.sent_at is None else entry.sent_at + self.stall_wait

    def _stall(self, entry: _Entry) -> None:
        entry.stalled = True
        self._change()
        if self.on_stall is not None and entry.auth_url is not None:
            self.on_stall(entry.rack, entry.auth_url)

    def _change(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def viewed(self, page: WalkPage | None = None) -> None:
        """The listener has sent ``page`` (None: a callback's hop): a tab is following the walk."""
        self._last_view = self.clock()
        if page is not None and page.status == 200 and page.final:
            self._final_view.set()

    def _match(self, state: str) -> _Entry | None:
        # A rack offered as a link is never hopped on from.
        return find_secret(state, [(e.state or "", e) for e in self._entries if e.kind == "hop"])

    def _ready_hop(self) -> _Entry | None:
        """The next rack to send the tab to: one it was never sent to, else one it was sent to whose
        callback has not come back (so that a reload, the back button or a closed sign-in skips none)."""
        ready = [e for e in self._entries if e.kind == "hop" and e.status == "waiting" and e.auth_url and not e.hopped]
        fresh = [e for e in ready if not e.visited]
        if fresh:
            return fresh[0]
        return ready[0] if ready else None

    async def _next_hop(self, wait: float, *, after: _Entry | None = None) -> str | None:
        """The next rack's sign-in, waiting (``wait`` seconds at most) while one may still come: a
        rack contacting its gateway, or, once the login of ``after`` (whose callback just came back)
        frees its parallel slot, a queued rack that a free slot starts."""
        with anyio.move_on_after(wait):
            while True:
                entry = self._ready_hop()
                if entry is not None:
                    entry.visited = True
                    entry.sent_at = self.clock()
                    self._change()  # the watch times its stall from now
                    return entry.auth_url
                holders = sum(e.status in ("starting", "waiting") and e is not after for e in self._entries)
                coming = ("queued", "starting") if after is not None and holders < self.parallel else ("starting",)
                if not any(e.status in coming for e in self._entries):
                    return None
                await self._changed.wait()
        return None

    def _rows(self) -> list[dict[str, object]]:
        # The same printable text the page shows (``_shown``): the script writes it with textContent,
        # which renders a bidi override or a control character as it is.
        return [
            {
                "rack": _shown(e.rack),
                "status": e.status,
                "label": _shown(e.label()),
                "detail": _shown(e.detail),
                "where": _shown(e.where()),
                "url": e.link(),
                "new_tab": e.new_tab,
            }
            for e in self._entries
        ]

    def _status_json(self) -> bytes:
        return json.dumps(
            {"racks": self._rows(), "summary": _shown(self.summary()), "finished": self.finished}
        ).encode()

    def _page(self) -> bytes:
        rows = []
        for entry in self._entries:
            link = entry.link()
            target = ' target="_blank" rel="noopener noreferrer"' if entry.new_tab else ""
            anchor = (
                f'<a class="go" href="{html.escape(link)}"{target}>Sign in</a>'
                if link
                else '<a class="go" href="#" hidden>Sign in</a>'
            )
            rows.append(
                f'<tr id="r{entry.index}" class="{entry.status}"><td class="rack">{_text(entry.rack)}</td>'
                f'<td class="state">{_text(entry.label())}</td><td class="detail">{_text(entry.detail)}</td>'
                f'<td class="where">{_text(entry.where())}</td><td>{anchor}</td></tr>'
            )
        if self.finished:
            refresh = ""
        elif any(e.status in ("queued", "starting") for e in self._entries):
            # A rack's sign-in may be next: come back for it (asking for the page sends the tab there).
            refresh = f'<meta http-equiv="refresh" content="{REFRESH:g}">'
        else:
            refresh = '<noscript><meta http-equiv="refresh" content="3"></noscript>'
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">{refresh}'
            f"<title>rack-gateway: signing in to {self.total} racks</title><style>{WALK_STYLE}</style></head>"
            f'<body><main><p class="brand">rack-gateway</p><h1>Signing in to {self.total} racks</h1>'
            f"<p>The terminal running <code>rack-gateway login</code> on <strong>{_text(self.terminal)}</strong> "
            "is logging in to these racks. Racks whose gateway sends you back come one after another in this "
            "tab; sign in to the others with their link.</p>"
            f'<p class="summary" id="summary">{_text(self.summary())}</p>'
            f"<table><tbody>{''.join(rows)}</tbody></table>"
            f"<script>{WALK_SCRIPT}</script></main></body></html>\n"
        ).encode()


def _shown(value: str) -> str:
    """Foreign text as the walk shows it: printable, cut at 300 characters."""
    return printable(value, limit=300)


def _text(value: str) -> str:
    return html.escape(_shown(value))
