"""One deadline per command: ``login --all --timeout T`` ends by T, however many racks wait their turn.

Trio's ``MockClock`` (autojump) runs the login in virtual time against gateways that keep every
login pending (an ``httpx.MockTransport``), so the test asserts the virtual time the whole command
took, never the wall clock.  Before, each rack's login had a deadline of its own from when its
turn came: 20 racks, 8 at a time, took three deadlines.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest
from trio.testing import MockClock

from rgw.client import GatewayClient
from rgw.config import ConfigStore
from rgw.errors import LoginTimeout
from rgw.login.events import discard
from rgw.login.flow import LoginOptions
from rgw.login.multi import LoginCoordinator
from rgw.models import LoginRequest
from tests.integration.flowkit import device_on

pytestmark = pytest.mark.anyio

RACKS = 20
TIMEOUT = 40.0


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def pending_forever(request: httpx.Request) -> httpx.Response:
    """A gateway where nobody ever signs in."""
    if request.url.path == "/api/v1/auth/cli/start":
        host = request.url.host
        return httpx.Response(200, json={"auth_url": f"https://{host}/in?state=s", "state": "s", "code_verifier": "v"})
    return httpx.Response(202, json={"status": "pending"})


class Quiet:
    async def open(self, url: str) -> bool:
        return True


async def test_login_all_ends_by_its_one_deadline_however_many_racks_wait_their_turn(tmp_path: Path) -> None:
    directory = tmp_path / "config"
    directory.mkdir(mode=0o700)
    urls = {f"rack{i:02d}": f"https://gw{i:02d}.example.com" for i in range(RACKS)}
    gateways = {name: {"url": url} for name, url in urls.items()}
    (directory / "config.json").write_text(json.dumps({"current": None, "gateways": gateways}))
    (directory / "config.json").chmod(0o600)
    coordinator = LoginCoordinator(
        store=ConfigStore(directory),
        browser=Quiet(),
        device=device_on("laptop"),
        emit=discard,
        options=LoginOptions(timeout=TIMEOUT, use_loopback=False, resume=False, long_poll=0, remind_after=0),
        client_factory=lambda r: GatewayClient(r.url, transport=httpx.MockTransport(pending_forever)),
    )
    started = anyio.current_time()
    results = await coordinator.login_all([LoginRequest(name, url) for name, url in urls.items()], parallel=8)
    took = anyio.current_time() - started
    assert [type(r.error) for r in results] == [LoginTimeout] * RACKS
    assert took <= TIMEOUT + 1  # one deadline for the whole command, not one per batch of 8 racks
