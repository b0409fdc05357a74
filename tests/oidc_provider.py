"""A real OpenID Connect provider for tests: ``oidc-provider-mock`` (from PyPI) as a subprocess on loopback.

``running_provider()`` starts ``python -m oidc_provider_mock --host 127.0.0.1 --port 0`` (with
``--require-nonce``: a client that sends no nonce is refused), reads the address uvicorn reports on
stderr, and returns once the discovery document answers.  ``Provider.put_user(sub, claims)`` sets the
claims its sign-in page gives an account (``PUT /users/<sub>``); an account signed in without that
gets ``{"email": sub}``.  ``sign_in(client, auth_url, sub)`` plays a browser on the provider's page
(no JavaScript there: a form whose ``sub`` field is the account, and a Deny button).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from tests.integration.pipes import PipeReader

_LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
START_TIMEOUT = 30.0


@dataclass
class Provider:
    url: str
    process: subprocess.Popen[str]
    log: PipeReader

    def put_user(self, sub: str, claims: dict[str, Any]) -> None:
        response = httpx.put(f"{self.url}/users/{quote(sub, safe='')}", json=claims, timeout=5, trust_env=False)
        assert response.status_code == 204, response.text


@contextlib.contextmanager
def running_provider(*, require_nonce: bool = True, remember: bool = False) -> Iterator[Provider]:
    """``remember``: the provider keeps a session, and signs a browser in again without a click
    (``tests/remembering_provider.py``)."""
    if remember:
        command = [sys.executable, str(Path(__file__).with_name("remembering_provider.py")), "--port", "0"]
        command += ["--require-nonce"] if require_nonce else []
    else:
        command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", "0"]
        command += ["--require-nonce", "true"] if require_nonce else []
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={"NO_COLOR": "1", "PATH": ""},
    )
    log = PipeReader(process.stderr, "oidc-provider-mock")
    try:
        line = log.wait_for(lambda text: _LISTENING.search(text) is not None, START_TIMEOUT, "its address")
        match = _LISTENING.search(line)
        assert match is not None
        url = match.group(1)
        # Listening is not serving yet: wait for the discovery document itself.
        with httpx.Client(timeout=2, trust_env=False) as client:
            client.get(url + "/.well-known/openid-configuration").raise_for_status()
        yield Provider(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def sign_in(client: httpx.Client, auth_url: str, sub: str | None, *, deny: bool = False) -> httpx.Response:
    """Open ``auth_url`` (the gateway may send it on to the provider) and sign in as ``sub`` (or press
    Deny): the provider's redirect back."""
    page = follow(client, client.get(auth_url))
    assert page.status_code == 200, page.text
    assert 'name="sub"' in page.text
    form = {"action": "deny"} if deny else {"sub": sub or ""}
    answer = client.post(page.url, data=form)  # the provider's forms post to the page's own URL
    assert answer.status_code in (302, 303), answer.text
    return answer


def follow(
    client: httpx.Client, response: httpx.Response, *, stop_at: str | None = None, limit: int = 10
) -> httpx.Response:
    """Follow redirects by hand (as a browser would), stopping before any URL starting with ``stop_at``."""
    for _ in range(limit):
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            return response
        target = urljoin(str(response.url), location)
        if stop_at is not None and target.startswith(stop_at):
            return response
        response = client.get(target)
    raise AssertionError(f"more than {limit} redirects")
