"""Two racks' gateways hand out the same login state (issue 20, item 3).

The shared loopback listener of a multi-rack login tells the logins apart by their state, so the
second rack whose gateway repeats a state already expected cannot be told apart from the first: that
rack fails with a gateway error, the other goes on and logs in, and nothing is left behind (its
pending file is deleted).  Before, ``ValueError: this state is already expected`` killed the whole
command and left both pending files, so the next run died too.

Two scripted gateways over real loopback sockets: ``first`` answers ``/start`` at once and keeps the
login pending until the test lets it finish; ``second`` answers ``/start`` with the same state only
once ``first`` is being polled (its state is registered by then), so the order is fixed.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rgw.config import ConfigStore
from rgw.errors import GatewayError
from rgw.login import events as ev
from rgw.login.flow import LoginOptions
from rgw.login.multi import LoginCoordinator, RackLoginResult
from rgw.models import LoginRequest
from rgw.retry import RetryPolicy
from rgw.testing.server import running_app
from tests.integration.flowkit import Recorder, device_on

pytestmark = pytest.mark.anyio

STATE = "the-same-state-" + "s" * 32
TOKEN = "rgw_sess_" + "t" * 40


class Scripted:
    """A gateway whose ``/start`` hands out ``STATE``; ``/complete`` is pending until ``finish`` is set."""

    def __init__(self, *, after: threading.Event | None = None) -> None:
        self.after = after  # answer /start only once this is set
        self.polled = threading.Event()
        self.finish = threading.Event()
        self.app = Starlette(
            routes=[
                Route("/api/v1/auth/cli/start", self.on_start, methods=["POST"]),
                Route("/api/v1/auth/cli/complete", self.on_complete, methods=["POST"]),
            ]
        )

    async def on_start(self, request: Request) -> JSONResponse:
        if self.after is not None:
            with anyio.fail_after(30):
                while not self.after.is_set():
                    await anyio.sleep(0.01)
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {"auth_url": f"{base}/signin?state={STATE}", "state": STATE, "code_verifier": "v" * 43, "loopback": True}
        )

    async def on_complete(self, request: Request) -> JSONResponse:
        self.polled.set()
        if not self.finish.is_set():
            return JSONResponse({"error": "authorization_pending"}, status_code=202)
        return JSONResponse({"token": TOKEN, "email": "developer@example.com"})


class Quiet:
    async def open(self, url: str) -> bool:
        return True


async def test_a_state_another_racks_login_expects_fails_that_rack_only(tmp_path: Path) -> None:
    directory = tmp_path / "config"
    first = Scripted()
    second = Scripted(after=first.polled)
    recorder = Recorder()
    coordinator = LoginCoordinator(
        store=ConfigStore(directory),
        browser=Quiet(),
        device=device_on("laptop"),
        emit=recorder,
        options=LoginOptions(timeout=60, long_poll=0, pace=0.05, remind_after=0, linger=0),
        policy=RetryPolicy.instant(),
    )

    def on_result(result: RackLoginResult) -> None:
        if result.rack == "second":
            first.finish.set()  # the first rack's sign-in finishes once the second has been refused

    with running_app(first.app) as one, running_app(second.app) as two:
        requests = [LoginRequest("first", one), LoginRequest("second", two)]
        with anyio.fail_after(60):
            results = {r.rack: r for r in await coordinator.login_all(requests, on_result=on_result)}
    assert results["first"].ok, results["first"].error
    assert results["first"].email == "developer@example.com"
    error = results["second"].error
    assert isinstance(error, GatewayError)
    assert error.exit_code == 6
    assert error.message == (
        "the gateway of rack second handed out the login state that rack first's login already waits on; "
        "second's login is refused (the browser's answer could not be told apart)"
    )
    assert "second" in error.hint
    assert [e.rack for e in recorder.of(ev.LoginFailed)] == ["second"]
    assert list(directory.glob("pending-*.json")) == []  # nothing left behind
    config = json.loads((directory / "config.json").read_text())
    assert set(config["gateways"]) == {"first"}
    assert config["gateways"]["first"]["token"] == TOKEN
