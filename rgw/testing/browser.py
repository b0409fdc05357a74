"""`ScriptedBrowser`: plays the user's browser against the reference gateway's sign-in pages.

`await browser.open(auth_url)` fetches the sign-in page, optionally waits `delay` seconds, posts the
form as `email` with `action` (`allow` or `cancel`), then follows every redirect by hand exactly as
a browser would, loopback redirects to the CLI included: at most 20 in one navigation, as Chromium
(more fail as ERR_TOO_MANY_REDIRECTS does), and a page that moves on at once with `<meta
http-equiv="refresh" content="0;url=...">` starts a new navigation (its own 20).  A sign-in page
that a remembered sign-in skips (the reference gateway's `remember_sign_in`) is a redirect like
another.  On the browser MFA page it posts a TOTP code from `totp_secret` when one is given; with
`stop_at_mfa` (or no `totp_secret`) it stops there, the page loaded: on a deployed-mode gateway its
own `GET /auth/cli/mfa` has exchanged the code by then, so a code the CLI sends afterwards cannot
take the exchange from it.  Opened on a multi-rack login's one-tab page it follows that walk's hops
from rack to rack (signing in at each), then signs in at the links the page opens in new tabs.  It
uses httpx and anyio only, so it runs under both anyio backends, and can stand in for the CLI's
browser launcher.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from html import unescape
from urllib.parse import urljoin

import anyio
import httpx
import pyotp

from rgw.client import default_ssl_context

#: Redirects one navigation follows, at most (Chromium's limit: net::URLRequest's kMaxRedirects).
MAX_REDIRECTS = 20
#: Navigations that pages start at once by ``<meta http-equiv=refresh content="0;url=...">``, in a row.
MAX_REFRESHES = 64
#: Sign-ins one tab goes through (a multi-rack login's walk), at most.
MAX_SIGN_INS = 64
_WALK_PAGE = '<p class="summary" id="summary">'
_WALK_DONE = "You can close this tab."
_NEW_TAB_LINK = re.compile(r'<a class="go" href="([^"]*)" target="_blank"', re.I)
# A page that moves on at once: <meta http-equiv="refresh" content="0;url=..."> (a delay other than 0,
# or none given a URL, is a page to stay on: the one-tab page reloads itself that way).
_REFRESH = re.compile(r'<meta\s+http-equiv="refresh"\s+content="0;\s*url=([^"]+)"', re.I)
_FORM = re.compile(r"<form\b[^>]*\baction=\"([^\"]*)\"[^>]*>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r"\b(name|value)=\"([^\"]*)\"", re.I)


class BrowserError(Exception):
    """The scripted browser could not go on (no sign-in form, too many redirects, ...)."""


def _hidden_fields(form_html: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for tag in _INPUT.findall(form_html):
        attrs = {k.lower(): unescape(v) for k, v in _ATTR.findall(tag)}
        if "name" in attrs and 'type="hidden"' in tag.lower():
            fields[attrs["name"]] = attrs.get("value", "")
    return fields


def _find_form(page: str, action_suffix: str) -> tuple[str, dict[str, str]] | None:
    for action, body in _FORM.findall(page):
        if unescape(action).endswith(action_suffix):
            return unescape(action), _hidden_fields(body)
    return None


def _sign_in_form(response: httpx.Response) -> tuple[str, dict[str, str]] | None:
    return _find_form(response.text, "/oauth/authorize") if response.status_code == 200 else None


def _new_tab_links(page: str) -> list[str]:
    return [unescape(link) for link in _NEW_TAB_LINK.findall(page)]


class ScriptedBrowser:
    """A user in a browser, scripted: sign in as `email`, allow or cancel, answer MFA with TOTP."""

    def __init__(
        self,
        email: str = "developer@example.com",
        action: str = "allow",
        totp_secret: str | None = None,
        timeout: float = 10.0,
        *,
        delay: float = 0.0,
        clock: Callable[[], float] = time.time,
        mfa_gate: Callable[[], Awaitable[object]] | None = None,
        follow_links: bool = True,
        walk_timeout: float = 120.0,
        stop_at_mfa: bool = False,
        on_mfa_page: Callable[[str], object] | None = None,
    ) -> None:
        self.email = email
        #: On a one-tab page, sign in at the links it opens in new tabs too (as a user clicking them).
        self.follow_links = follow_links
        #: Seconds it keeps coming back to a one-tab page for racks still to sign in to.
        self.walk_timeout = walk_timeout
        #: Sign-ins done, over every `open`.
        self.sign_ins = 0
        #: Awaited on the MFA page before the code is posted: lets a test hold the browser back
        #: (e.g. until the terminal is prompting too), to play a user who finishes MFA there later.
        self.mfa_gate = mfa_gate
        #: Stop on the gateway's MFA page and post no code, even with a `totp_secret` (the user will
        #: type the code in the terminal); `open` returns once the page has loaded.
        self.stop_at_mfa = stop_at_mfa
        #: Called with the MFA page's URL each time the browser has loaded one (before any code is
        #: posted): lets a test set an event and type the code in the terminal only then.
        self.on_mfa_page = on_mfa_page
        #: The URL of every MFA page the browser loaded, in order.
        self.mfa_pages: list[str] = []
        self.action = action
        self.totp_secret = totp_secret
        self.timeout = timeout
        self.delay = delay
        self.clock = clock
        self.visited: list[str] = []
        #: Every one-tab page this browser was shown, in order.
        self.walk_pages: list[str] = []
        self.last_page: str = ""
        self.last_status: int | None = None

    async def open(self, url: str) -> bool:
        """Go through the sign-in flow that starts at `url` (the login's `auth_url`); True when done.

        Like a launcher it returns True (the CLI's browser protocol); unlike one it returns only once
        the scripted user has finished, so a flow sees the loopback hit before ``BrowserOpened``.

        `url` may also be a multi-rack login's one-tab page: the browser follows its redirects from
        sign-in to sign-in until it rests on the page, then (``follow_links``) signs in once at each
        link the page opens in a new tab (racks whose gateway does not send the browser back),
        coming back to the page for new ones until it says the tab may be closed.
        """
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0))
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, verify=default_ssl_context()
        ) as client:
            before = self.sign_ins
            response = await self._sign_ins(client, await self._follow(client, await self._get(client, url)))
            if self.sign_ins == before and _WALK_PAGE not in response.text:
                raise BrowserError(f"no sign-in form at {url} (status {response.status_code})")
            if self.follow_links and _WALK_PAGE in response.text:
                await self._walk_links(client, str(response.url), response)
        return True

    async def _walk_links(self, client: httpx.AsyncClient, page_url: str, response: httpx.Response) -> None:
        """On the one-tab page: sign in at each new-tab link, coming back to the page for new ones
        (as its live list shows them) until it says the tab may be closed or the CLI is gone."""
        done: set[str] = set()
        deadline = anyio.current_time() + self.walk_timeout
        while anyio.current_time() < deadline:
            links = [link for link in _new_tab_links(response.text) if link not in done]
            for link in links:
                done.add(link)
                await self._sign_ins(client, await self._follow(client, await self._get(client, link)))
            if _WALK_DONE in response.text:
                return
            if not links:
                await anyio.sleep(0.25)
            try:  # back to the page, which may send the tab on to a rack's sign-in
                response = await self._sign_ins(client, await self._follow(client, await self._get(client, page_url)))
            except httpx.TransportError:
                return  # the CLI has ended: nothing serves the page any more

    async def _sign_ins(self, client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
        """Sign in each time the tab comes to a sign-in page (a walk goes from one to the next)."""
        for _ in range(MAX_SIGN_INS):
            form = _sign_in_form(response)
            if form is None:
                return response
            response = await self._sign_in(client, response, form)
        raise BrowserError(f"more than {MAX_SIGN_INS} sign-ins in one tab")

    async def _sign_in(
        self, client: httpx.AsyncClient, response: httpx.Response, form: tuple[str, dict[str, str]]
    ) -> httpx.Response:
        """Sign in on the page `response` holds (and pass MFA); the page the browser ends on."""
        if self.delay > 0:
            await anyio.sleep(self.delay)
        action, fields = form
        fields.update({"email": self.email, "action": self.action})
        self.sign_ins += 1
        response = await self._post(client, urljoin(str(response.url), action), fields)
        response = await self._follow(client, response)
        mfa_form = _find_form(response.text, "/auth/mfa") if response.status_code < 500 else None
        if mfa_form is not None:
            self.mfa_pages.append(str(response.url))
            if self.on_mfa_page is not None:
                self.on_mfa_page(str(response.url))
        if mfa_form is not None and self.totp_secret and not self.stop_at_mfa:
            if self.mfa_gate is not None:
                await self.mfa_gate()
            action, fields = mfa_form
            fields["code"] = pyotp.TOTP(self.totp_secret).at(int(self.clock()))
            response = await self._post(client, urljoin(str(response.url), action), fields)
            response = await self._follow(client, response)
        return response

    async def _get(self, client: httpx.AsyncClient, url: str) -> httpx.Response:
        self.visited.append(url)
        return self._record(await client.get(url))

    async def _post(self, client: httpx.AsyncClient, url: str, fields: dict[str, str]) -> httpx.Response:
        self.visited.append(url)
        return self._record(await client.post(url, data=fields))

    def _record(self, response: httpx.Response) -> httpx.Response:
        self.last_page = response.text
        self.last_status = response.status_code
        if _WALK_PAGE in response.text:
            self.walk_pages.append(response.text)
        return response

    async def _follow(self, client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
        """Follow redirects, and pages that move on at once (each a new navigation, as in a browser)."""
        for _ in range(MAX_REFRESHES):
            response = await self._redirects(client, response)
            refresh = _REFRESH.search(response.text) if response.status_code == 200 else None
            if refresh is None:
                return response
            response = await self._get(client, urljoin(str(response.url), unescape(refresh.group(1)).strip()))
        raise BrowserError(f"more than {MAX_REFRESHES} pages in a row moved on by themselves")

    async def _redirects(self, client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
        """One navigation's redirects: at most ``MAX_REDIRECTS``, then ERR_TOO_MANY_REDIRECTS."""
        for followed in range(MAX_REDIRECTS + 1):
            location = response.headers.get("location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                return response
            if followed == MAX_REDIRECTS:
                break
            response = await self._get(client, urljoin(str(response.url), location))
        raise BrowserError(f"more than {MAX_REDIRECTS} redirects in one navigation (ERR_TOO_MANY_REDIRECTS)")
