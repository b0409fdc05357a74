"""`ScriptedBrowser`: plays the user's browser against the reference gateway's sign-in pages.

`await browser.open(auth_url)` fetches the sign-in page, optionally waits `delay` seconds, posts the
form as `email` with `action` (`allow` or `cancel`), then follows every redirect by hand (at most 10)
exactly as a browser would, loopback redirects to the CLI included.  On the browser MFA page it posts
a TOTP code from `totp_secret` when one is given.  It uses httpx and anyio only, so it runs under both
anyio backends, and can stand in for the CLI's browser launcher.
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

MAX_REDIRECTS = 10
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
    ) -> None:
        self.email = email
        #: Awaited on the MFA page before the code is posted: lets a test hold the browser back
        #: (e.g. until the terminal is prompting too), to play a user who finishes MFA there later.
        self.mfa_gate = mfa_gate
        self.action = action
        self.totp_secret = totp_secret
        self.timeout = timeout
        self.delay = delay
        self.clock = clock
        self.visited: list[str] = []
        self.last_page: str = ""
        self.last_status: int | None = None

    async def open(self, url: str) -> bool:
        """Go through the sign-in flow that starts at `url` (the login's `auth_url`); True when done.

        Like a launcher it returns True (the CLI's browser protocol); unlike one it returns only once
        the scripted user has finished, so a flow sees the loopback hit before ``BrowserOpened``.
        """
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0))
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, verify=default_ssl_context()
        ) as client:
            response = await self._get(client, url)
            form = _find_form(response.text, "/oauth/authorize") if response.status_code == 200 else None
            if form is None:
                raise BrowserError(f"no sign-in form at {url} (status {response.status_code})")
            if self.delay > 0:
                await anyio.sleep(self.delay)
            action, fields = form
            fields.update({"email": self.email, "action": self.action})
            response = await self._post(client, urljoin(str(response.url), action), fields)
            response = await self._follow(client, response)
            mfa_form = _find_form(response.text, "/auth/mfa") if response.status_code < 500 else None
            if mfa_form is not None and self.totp_secret:
                if self.mfa_gate is not None:
                    await self.mfa_gate()
                action, fields = mfa_form
                fields["code"] = pyotp.TOTP(self.totp_secret).at(int(self.clock()))
                response = await self._post(client, urljoin(str(response.url), action), fields)
                await self._follow(client, response)
        return True
        return True

    async def _get(self, client: httpx.AsyncClient, url: str) -> httpx.Response:
        self.visited.append(url)
        return self._record(await client.get(url))

    async def _post(self, client: httpx.AsyncClient, url: str, fields: dict[str, str]) -> httpx.Response:
        self.visited.append(url)
        return self._record(await client.post(url, data=fields))

    def _record(self, response: httpx.Response) -> httpx.Response:
        self.last_page = response.text
        self.last_status = response.status_code
        return response

    async def _follow(self, client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
        for _ in range(MAX_REDIRECTS):
            location = response.headers.get("location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                return response
            response = await self._get(client, urljoin(str(response.url), location))
        raise BrowserError(f"more than {MAX_REDIRECTS} redirects")
