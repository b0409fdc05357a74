"""Timestamps from a hostile gateway, an old config file or a planted ledger (issue 20, items 1 and 6).

A gateway can send any text as a time: in ``/auth/cli/complete``'s ``expires_at``, in the
``X-Session-Expires-At`` header, in ``/info``'s ``session.expires_at``, in the MFA status.  A
value that parses but lies outside the range rgw can compute with (``9999-12-31T23:59:59-01:00``
is in year 10000 once in UTC) is "unknown": said as such, never stored, never a traceback, on this
run or a later one.  A ``config.json`` an older version wrote with such a value works too.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rgw.testing import RunningGateway
from rgw.testing.server import running_app
from tests.integration.conftest import Cli
from tests.integration.test_mfa import MfaCli, ScriptedPrompter, admin_session, create_token, mcli, totp

pytestmark = pytest.mark.anyio
__all__ = ["mcli"]  # the fixture

#: Each parses as an RFC 3339 time, and each is out of range once converted to UTC.
OUT_OF_RANGE = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z"]
GOOD = "2030-01-02T03:04:05Z"
START = {"auth_url": "https://idp.example.com/authorize?state=s1", "state": "s1", "code_verifier": "v1"}


class TimeGateway:
    """A gateway that puts ``when`` in every time it answers: login, header, ``/info``, MFA status."""

    def __init__(self, when: str, *, header: str | None = None) -> None:
        self.when = when
        self.header = header if header is not None else when
        self.app = Starlette(
            routes=[
                Route("/api/v1/auth/cli/start", self.on_start, methods=["POST"]),
                Route("/api/v1/auth/cli/complete", self.on_complete, methods=["POST"]),
                Route("/api/v1/info", self.on_info, methods=["GET"]),
                Route("/api/v1/auth/mfa/status", self.on_mfa_status, methods=["GET"]),
            ]
        )

    async def on_start(self, request: Request) -> JSONResponse:
        return JSONResponse(START)

    async def on_complete(self, request: Request) -> JSONResponse:
        return JSONResponse({"token": "rgw_session_abc", "email": "dev@example.com", "expires_at": self.when})

    def _answer(self, body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(body, headers={"X-Session-Expires-At": self.header} if self.header else None)

    async def on_info(self, request: Request) -> JSONResponse:
        user = {"email": "dev@example.com", "roles": ["developer"], "mfa_enrolled": True, "mfa_required": False}
        return self._answer({"user": user, "session": {"expires_at": self.when, "id": 1}})

    async def on_mfa_status(self, request: Request) -> JSONResponse:
        method = {"id": 1, "type": "totp", "label": "phone", "cli_capable": True, "last_used_at": self.when}
        return self._answer(
            {"enrolled": True, "required": True, "methods": [method], "recent_step_up_expires_at": self.when}
        )


def seed(config: Path, url: str, expires_at: str | None) -> None:
    config.mkdir(mode=0o700, parents=True, exist_ok=True)
    rack: dict[str, Any] = {"url": url, "token": "rgw_session_abc", "email": "dev@example.com"}
    if expires_at is not None:
        rack["expires_at"] = expires_at
    (config / "config.json").write_text(json.dumps({"current": "prod", "gateways": {"prod": rack}}))
    (config / "config.json").chmod(0o600)


def stored_expiry(cli: Cli) -> object:
    return cli.config()["gateways"]["prod"].get("expires_at")


#: Every command that shows a session's expiry, in text and JSON.
COMMANDS = [
    ("racks",),
    ("racks", "--json"),
    ("status",),
    ("status", "--offline"),
    ("status", "--json"),
    ("test-auth",),
    ("test-auth", "--json"),
    ("test-auth", "mfa"),
    ("test-auth", "mfa", "--json"),
]


@pytest.mark.parametrize("when", OUT_OF_RANGE)
async def test_an_out_of_range_expiry_from_complete_is_not_stored_and_no_command_crashes(cli: Cli, when: str) -> None:
    gateway = TimeGateway(when, header="")
    with running_app(gateway.app) as url:
        login = await cli("login", "prod", url, "--no-browser", "--no-loopback", "--timeout", "10")
        assert login.code == 0, login.err
        assert login.out == "Logged in as dev@example.com\n"
        assert stored_expiry(cli) is None  # never stored
        for args in COMMANDS:
            result = await cli(*args)
            assert result.code == 0, (args, result.err)
            assert "Traceback" not in result.err, (args, result.err)
            assert "Error" not in result.err, (args, result.err)
        assert stored_expiry(cli) is None  # nor by any later command


@pytest.mark.parametrize("when", OUT_OF_RANGE)
async def test_a_config_an_older_version_wrote_with_an_out_of_range_expiry_crashes_no_command(
    cli: Cli, when: str
) -> None:
    gateway = TimeGateway(GOOD)
    with running_app(gateway.app) as url:
        for args in [("racks",), ("racks", "--json"), ("status", "--offline"), ("status", "--offline", "--json")]:
            seed(cli.config_dir, url, when)
            result = await cli(*args)
            assert result.code == 0, (args, result.err)
            assert "Traceback" not in result.err, (args, result.err)
        racks = await cli("racks")
        assert "logged in (expiry unknown)" in racks.out
        offline = await cli("status", "--offline")
        assert "expiry unknown" in offline.out
        for args in [("racks", "--json"), ("status", "--offline", "--json")]:
            shown = json.loads((await cli(*args)).out)
            entry = shown[0] if isinstance(shown, list) else shown["racks"][0]
            assert entry["expires_at"] is None, args  # JSON says unknown too, never the raw value
        # A command that asks the gateway replaces it with the gateway's good value.
        for args in [("status",), ("test-auth",)]:
            seed(cli.config_dir, url, when)
            result = await cli(*args)
            assert result.code == 0, (args, result.err)
            assert stored_expiry(cli) == GOOD, args


@pytest.mark.parametrize("when", OUT_OF_RANGE)
async def test_an_out_of_range_expiry_from_info_is_said_unknown_and_never_stored(cli: Cli, when: str) -> None:
    gateway = TimeGateway(when)
    with running_app(gateway.app) as url:
        seed(cli.config_dir, url, None)
        status = await cli("status")
        assert status.code == 0, status.err
        assert "expiry unknown" in status.out
        assert stored_expiry(cli) is None  # remember_expiry stored nothing
        as_json = json.loads((await cli("status", "--json")).out)
        assert as_json["racks"][0]["expires_at"] is None
        test_auth = await cli("test-auth")
        assert test_auth.code == 0, test_auth.err
        assert "Session expires: unknown" in test_auth.out
        assert json.loads((await cli("test-auth", "--json")).out)["expires_at"] is None
        mfa = await cli("test-auth", "mfa")
        assert mfa.code == 0, mfa.err
        assert "Last verification: unknown" in mfa.out
        assert "Step-up window: open until unknown" in mfa.out
        assert json.loads((await cli("test-auth", "mfa", "--json")).out)["recent_step_up_expires_at"] is None
        assert stored_expiry(cli) is None


async def test_a_good_expiry_from_info_is_still_shown_and_stored(cli: Cli) -> None:
    gateway = TimeGateway(GOOD)
    with running_app(gateway.app) as url:
        seed(cli.config_dir, url, None)
        status = await cli("status")
        assert status.code == 0, status.err
        assert stored_expiry(cli) == GOOD
        test_auth = await cli("test-auth")
        assert "Session expires: 2030-01-02 03:04:05 UTC" in test_auth.out


# -- item 6: a planted or corrupt MFA ledger neither crashes a step-up nor refuses codes for years ---


@pytest.mark.parametrize("stamp", ["1e12", "1e999", "NaN", "4102444800"])
async def test_a_ledger_stamped_out_of_bounds_neither_crashes_nor_refuses_a_step_up(mcli: MfaCli, stamp: str) -> None:
    from rgw.login.ledger import LEDGER_FILE
    from rgw.urls import origin

    secret = await admin_session(mcli)
    path = mcli.config_dir / LEDGER_FILE
    failures = ", ".join([f'[{stamp}, 0, "code"]'] * 4)
    path.write_text(f'{{"{origin(mcli.gw.url)}": [{failures}]}}')
    result = await create_token(mcli, prompter=ScriptedPrompter([totp(secret)]))
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert "not sending another MFA code" not in result.err
    data = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} written back"))
    stamps = [entry[0] for entries in data.values() for entry in entries]
    assert len(stamps) == 1  # the step-up's own answer; the planted ones are gone
    assert abs(stamps[0] - time.time()) < 60


# -- item 1: a pending login's start time is a time from a file too --------------------------------


@pytest.mark.parametrize("started", ["1" + "0" * 400, "1e999", "NaN", "-1e999", "true", "4102444800"])
async def test_a_pending_login_started_at_no_usable_time_is_dropped_not_fatal(
    cli: Cli, gateway: RunningGateway, started: str
) -> None:
    from rgw.login.pending import PendingLogins

    cli.config_dir.mkdir(mode=0o700, parents=True)
    path = PendingLogins(cli.config_dir, "prod", gateway.url).path
    record = {"format": 1, "rack": "prod", "url": gateway.url, "auth_url": "https://idp.example.com/a"}
    record.update({"state": "s" * 43, "code_verifier": "v" * 64, "loopback": False, "started_at": 0})
    path.write_text(json.dumps(record).replace('"started_at": 0', f'"started_at": {started}'))
    path.chmod(0o600)
    result = await cli("login", "prod", gateway.url)
    assert result.code == 0, result.err
    assert result.out == "Logged in as developer@example.com\n"
    assert "Resum" not in result.err  # a new login, not the planted one
    assert not path.exists()


# -- item 6: the request budget's file --------------------------------------------------------------


def plant_budget(config: Path, url: str, tat: str) -> None:
    from rgw.client.budget import BUDGET_FILE
    from rgw.urls import origin

    config.mkdir(mode=0o700, parents=True, exist_ok=True)
    (config / BUDGET_FILE).write_text(f'{{"{origin(url)}": {{"tat": {tat}}}}}')


@pytest.mark.parametrize("ahead", [295, 10**9])
async def test_a_budget_schedule_minutes_ahead_does_not_hold_a_login(
    cli: Cli, gateway: RunningGateway, ahead: int
) -> None:
    plant_budget(cli.config_dir, gateway.url, repr(time.time() + ahead))
    with anyio.fail_after(30):  # a login that obeyed it would wait 295 s
        result = await cli("login", "prod", gateway.url)
    assert result.code == 0, result.err
    assert "before the next request" not in result.err


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # real seconds: once is enough
async def test_a_wait_of_seconds_for_the_budget_is_said(cli: Cli, gateway: RunningGateway) -> None:
    plant_budget(cli.config_dir, gateway.url, repr(time.time() + 6))  # other processes' queue, 5 s of it
    result = await cli("login", "prod", gateway.url)
    assert result.code == 0, result.err
    assert re.search(r"^Waiting [45] s before the next request to http://127\.0\.0\.1:\d+: ", result.err, re.M), (
        result.err
    )
    assert "rate-budget.json" in result.err
