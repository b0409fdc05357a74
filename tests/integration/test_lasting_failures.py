"""Failures that do not heal by themselves: a name DNS says does not exist, ``https://`` to a port
that speaks plain HTTP.

A URL never used before fails at once, with a hint that says what is wrong (not "check your
certificate and your clock"); a rack whose gateway answered before (stored with this URL) keeps
retrying until the login's deadline, since a VPN that is down makes its names vanish.

Real sockets only: the reference gateway over plain HTTP on loopback, asked for ``https://``, and a
name under ``.invalid`` (RFC 2606: never resolves; the resolver says so without the network).
Attempts are counted (retry events, retry lines), never timed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from rgw.client import GatewayClient
from rgw.config import ConfigStore
from rgw.errors import GatewayUnreachable
from rgw.login import events as ev
from rgw.login.flow import LoginFlow, LoginOptions
from rgw.retry import RetryPolicy
from rgw.testing import RunningGateway
from tests.integration.conftest import Cli
from tests.integration.flowkit import Recorder, device_on

pytestmark = pytest.mark.anyio

NO_SUCH_NAME = "https://nosuch.invalid"
DNS_ERROR = "Error: gateway nosuch.invalid unreachable: DNS lookup failed (no such name)"
DNS_HINT = "Check the URL: the name does not exist (or exists only while a VPN is up)."
PLAIN_HINT = "The server speaks plain HTTP on this port: check the URL's scheme and port."
#: A new URL's tries in these flows: a known rack's retries go past it.
START_ATTEMPTS = 3


def https_to(gateway: RunningGateway) -> str:
    """The plain-HTTP reference gateway's URL with ``https://``: TLS to a port that speaks HTTP."""
    return gateway.url.replace("http://", "https://", 1)


def plain_error(url: str) -> str:
    return f"Error: gateway {url.removeprefix('https://')} unreachable: TLS handshake failed (plain HTTP)"


def store_rack(config_dir: Path, url: str) -> Path:
    """``dev`` stored with ``url``: its gateway answered a login before."""
    config_dir.mkdir(mode=0o700, exist_ok=True)
    path = config_dir / "config.json"
    path.write_text(json.dumps({"current": "dev", "gateways": {"dev": {"url": url, "email": "dev@example.com"}}}))
    path.chmod(0o600)
    return path


async def test_a_new_url_whose_name_does_not_exist_fails_at_once_saying_to_check_it(cli: Cli) -> None:
    result = await cli("login", "x", NO_SUCH_NAME, "--no-browser")
    assert result.code == 5
    assert result.err.splitlines() == [DNS_ERROR, DNS_HINT]  # no retry line before it
    assert result.out == ""


async def test_https_to_a_new_plain_http_port_fails_at_once_naming_the_scheme_not_the_certificate(
    cli: Cli, gateway: RunningGateway
) -> None:
    url = https_to(gateway)
    result = await cli("login", "y", url, "--no-browser")
    assert result.code == 5
    assert result.err.splitlines() == [plain_error(url), PLAIN_HINT]
    assert result.out == ""


async def test_a_stored_racks_name_that_does_not_resolve_is_retried_until_the_timeout(cli: Cli) -> None:
    store_rack(cli.config_dir, NO_SUCH_NAME)
    # Not shorter: the resolver here sometimes takes 5 s to say a name does not exist.
    result = await cli("login", "dev", "--no-browser", "--no-loopback", "--timeout", "8")
    assert result.code == 5
    lines = result.err.splitlines()
    retries = lines[:-2]
    assert len(retries) >= 1
    assert all(
        line.startswith("Gateway unreachable (DNS lookup failed) - retrying (attempt ")
        and line.endswith("; Ctrl-C gives up")
        for line in retries
    )
    assert lines[-2:] == [DNS_ERROR, DNS_HINT]


async def test_a_stored_racks_plain_http_port_asked_for_https_is_retried_until_the_timeout(
    cli: Cli, gateway: RunningGateway
) -> None:
    url = https_to(gateway)
    store_rack(cli.config_dir, url)
    result = await cli("login", "dev", "--no-browser", "--no-loopback", "--timeout", "3")
    assert result.code == 5
    lines = result.err.splitlines()
    retries = lines[:-2]
    assert len(retries) >= 2
    assert all(
        line.startswith("Gateway unreachable (TLS handshake failed) - retrying (attempt ")
        and line.endswith("; Ctrl-C gives up")
        for line in retries
    )
    assert lines[-2:] == [plain_error(url), PLAIN_HINT]


def no_such_name(_gateway: RunningGateway) -> str:
    return NO_SUCH_NAME


class StopAfter(Recorder):
    """Records a login's events and, like Ctrl-C, ends it after ``retries`` retries."""

    def __init__(self, retries: int) -> None:
        super().__init__()
        self.retries = retries
        self.scope = anyio.CancelScope()

    def __call__(self, event: ev.LoginEvent) -> None:
        super().__call__(event)
        if len(self.of(ev.GatewayRetry)) >= self.retries:
            self.scope.cancel()


async def failed_login(url: str, config: Path, recorder: Recorder) -> GatewayUnreachable | None:
    """One login to ``url`` as rack ``dev``; its failure (None: the recorder ended it first).

    The deadline is long: the resolver here sometimes takes 5 s to say a name does not exist.
    """
    async with GatewayClient(url) as client:
        flow = LoginFlow(
            client=client,
            store=ConfigStore(config),
            browser=None,  # type: ignore[arg-type]  # never reached
            device=device_on("laptop"),
            emit=recorder,
            policy=RetryPolicy(initial=0.01, cap=0.02),
            options=LoginOptions(
                timeout=60, start_attempts=START_ATTEMPTS, use_loopback=False, resume=False, long_poll=0
            ),
        )
        scope = recorder.scope if isinstance(recorder, StopAfter) else anyio.CancelScope()
        with scope:
            try:
                await flow.run("dev")
            except GatewayUnreachable as exc:
                return exc
            raise AssertionError("the login got a session")
    return None


@pytest.mark.parametrize("url_of", [no_such_name, https_to], ids=["no-such-name", "https-to-plain-http"])
async def test_a_lasting_failure_of_a_new_url_is_not_retried_and_of_a_stored_rack_is(
    url_of: Callable[[RunningGateway], str], gateway: RunningGateway, tmp_path: Path
) -> None:
    url = url_of(gateway)
    recorder = Recorder()
    error = await failed_login(url, tmp_path / "new", recorder)
    assert error is not None
    assert error.lasting
    assert recorder.kinds() == []  # one try: no retry

    store_rack(tmp_path / "known", url)
    stopper = StopAfter(START_ATTEMPTS + 2)
    assert await failed_login(url, tmp_path / "known", stopper) is None  # still retrying when stopped
    retries = stopper.of(ev.GatewayRetry)
    # Past the tries a new URL gets for a failure that may heal, each saying it goes on to the deadline.
    assert len(retries) == START_ATTEMPTS + 2
    assert all(isinstance(e, ev.GatewayRetry) and e.until_deadline for e in retries)
    assert set(stopper.kinds()) == {"GatewayRetry"}
