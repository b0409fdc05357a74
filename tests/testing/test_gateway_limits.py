"""The other limits of a deployed gateway: MFA attempts (successes count), the lock, TOTP steps,
and login states deleted on redemption."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from rgw.testing.gateway.mfa import ATTEMPTS_MESSAGE, LOCKED_MESSAGE

from .gateway_helpers import CLI_MFA, COMPLETE, START, FakeClock, bearer, complete_body, login, totp_at

MFA_USER = "mfa@example.com"
VERIFY = "/api/v1/auth/mfa/verify"


@pytest.fixture
def deployed(clock: FakeClock) -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=False, rate_limit=None, clock=clock)) as gw:
        yield gw


@pytest.fixture(params=[True, False], ids=["extensions", "deployed"])
def either(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=request.param, rate_limit=None, clock=clock)) as gw:
        yield gw


def http(gw: RunningGateway) -> httpx.Client:
    return httpx.Client(base_url=gw.url, timeout=30)


def secret(gw: RunningGateway) -> str:
    value = gw.gateway.totp_secret(MFA_USER)
    assert value is not None
    return value


def mfa_login(gw: RunningGateway, client: httpx.Client, clock: FakeClock) -> str:
    return str(login(client, gw, MFA_USER, totp_code=totp_at(secret(gw), clock))["token"])


def at_mfa_stage(gw: RunningGateway, client: httpx.Client) -> str:
    start = client.post(START).json()
    gw.gateway.complete_browser_login(start["state"], MFA_USER)
    return str(start["state"])


def cli_code(client: httpx.Client, state: str, code: str) -> httpx.Response:
    return client.post(CLI_MFA, json={"state": state, "method": "totp", "code": code})


def test_five_attempts_in_five_minutes_successes_included(either: RunningGateway, clock: FakeClock) -> None:
    with http(either) as client:
        token = mfa_login(either, client, clock)  # attempt 1, a success
        for _ in range(4):  # attempts 2-5, all successes, each on a new time step
            clock.advance(30)
            assert (
                client.post(VERIFY, headers=bearer(token), json={"code": totp_at(secret(either), clock)}).status_code
                == 200
            )
        clock.advance(30)
        sixth = client.post(VERIFY, headers=bearer(token), json={"code": totp_at(secret(either), clock)})
        if either.settings.extensions:
            assert (sixth.status_code, sixth.json()) == (
                429,
                {"error": "too_many_attempts", "message": ATTEMPTS_MESSAGE},
            )
        else:
            assert (sixth.status_code, sixth.json()) == (400, {"error": "too many attempts - try again in 5 minutes"})
        assert not either.gateway.user_locked(MFA_USER)  # a refusal at the limit does not lock
        # the refusal is itself logged: the window clears only 5 minutes after it
        clock.advance(301)
        assert (
            client.post(VERIFY, headers=bearer(token), json={"code": totp_at(secret(either), clock)}).status_code == 200
        )


def test_attempt_limit_at_login_is_invalid_code_on_a_deployed_gateway(
    deployed: RunningGateway, clock: FakeClock
) -> None:
    with http(deployed) as client:
        for _ in range(5):
            clock.advance(30)
            state = at_mfa_stage(deployed, client)
            assert cli_code(client, state, totp_at(secret(deployed), clock)).status_code == 200
        clock.advance(30)
        state = at_mfa_stage(deployed, client)
        r = cli_code(client, state, totp_at(secret(deployed), clock))
        assert (r.status_code, r.json()) == (400, {"error": "invalid_code"})


def test_five_failures_lock_the_user_until_unlocked(deployed: RunningGateway, clock: FakeClock) -> None:
    with http(deployed) as client:
        token = mfa_login(deployed, client, clock)
        clock.advance(301)  # the login's success has left the window
        answers = [client.post(VERIFY, headers=bearer(token), json={"code": "000000"}) for _ in range(5)]
        assert [r.json()["error"] for r in answers] == ["verification failed"] * 4 + [
            "account locked due to multiple failed attempts - contact administrator"
        ]
        assert {r.status_code for r in answers} == {400}
        assert deployed.gateway.user_locked(MFA_USER)
        # a locked user's session fails once with "user locked", and is revoked by that
        r = client.get("/api/v1/info", headers=bearer(token))
        assert (r.status_code, r.json()["error"]) == (401, "authentication failed: user locked")
        r = client.get("/api/v1/info", headers=bearer(token))
        assert (r.status_code, r.json()["error"]) == (401, "authentication failed: session revoked")
        # the lock does not time out; MFA at login is refused while it lasts
        clock.advance(7 * 86400)
        state = at_mfa_stage(deployed, client)
        assert cli_code(client, state, totp_at(secret(deployed), clock)).json() == {"error": "invalid_code"}
        fresh = login(client, deployed)["token"]  # another user is not affected
        deployed.gateway.unlock_user(MFA_USER)
        assert not deployed.gateway.user_locked(MFA_USER)
        clock.advance(30)
        assert cli_code(client, state, totp_at(secret(deployed), clock)).status_code == 200
        assert client.get("/api/v1/info", headers=bearer(fresh)).status_code == 200


def test_a_new_session_of_a_locked_user_fails_on_the_rack_proxy_too(deployed: RunningGateway, clock: FakeClock) -> None:
    with http(deployed) as client:
        token = mfa_login(deployed, client, clock)
        deployed.gateway.lock_user(MFA_USER)
        r = client.get("/api/v1/rack-proxy/apps", headers=bearer(token))
        assert (r.status_code, r.text, r.headers["X-Error-Reason"]) == (
            401,
            "authentication failed: user locked\n",
            "user locked",
        )


def test_the_lock_answers_with_extensions(gw: RunningGateway, clock: FakeClock) -> None:
    with http(gw) as client:
        state = at_mfa_stage(gw, client)
        answers = [cli_code(client, state, "000000") for _ in range(5)]
        assert [r.status_code for r in answers] == [400] * 4 + [403]
        assert answers[4].json() == {"error": "account_locked", "message": LOCKED_MESSAGE}
        assert cli_code(client, state, totp_at(secret(gw), clock)).json()["error"] == "account_locked"
        assert gw.gateway.mfa.locked(MFA_USER)


def test_failures_of_both_kinds_count_toward_the_lock(deployed: RunningGateway, clock: FakeClock) -> None:
    with http(deployed) as client:
        token = mfa_login(deployed, client, clock)
        clock.advance(301)
        for _ in range(3):
            assert client.post(VERIFY, headers=bearer(token), json={"code": "000000"}).status_code == 400
        for _ in range(2):  # security-key failures: an unknown challenge is logged as one
            r = client.post(
                "/api/v1/auth/mfa/webauthn/assertion/verify",
                headers=bearer(token),
                json={"session_data": "never-issued", "assertion_response": '{"id": "x"}'},
            )
            assert r.status_code == 400
        assert not deployed.gateway.user_locked(MFA_USER)  # a challenge failure never locks by itself
        r = client.post(VERIFY, headers=bearer(token), json={"code": "000000"})
        assert r.json() == {"error": "account locked due to multiple failed attempts - contact administrator"}


def test_each_time_step_once_and_only_steps_minus_one_to_plus_one(either: RunningGateway, clock: FakeClock) -> None:
    s = secret(either)
    with http(either) as client:
        states = [at_mfa_stage(either, client) for _ in range(5)]
        refused = {"error": "invalid_code"}
        assert cli_code(client, states[0], totp_at(s, clock, 60)).json() == refused  # step +2
        assert cli_code(client, states[0], totp_at(s, clock, -60)).json() == refused  # step -2
        assert cli_code(client, states[0], totp_at(s, clock, 30)).status_code == 200  # step +1
        # step -1 is still unused, so it is accepted after +1 (steps, not a counter)
        assert cli_code(client, states[1], totp_at(s, clock, -30)).status_code == 200
        assert cli_code(client, states[2], totp_at(s, clock, 30)).json() == refused  # step +1 again: a replay
        clock.advance(301)  # the 5 attempts leave the window
        assert cli_code(client, states[2], totp_at(s, clock)).status_code == 200
        assert not either.gateway.user_locked(MFA_USER)


def test_a_replayed_step_counts_as_a_failure(deployed: RunningGateway, clock: FakeClock) -> None:
    code = totp_at(secret(deployed), clock)
    with http(deployed) as client:
        token = login(client, deployed, MFA_USER, totp_code=code)["token"]
        for _ in range(4):  # the same code, still inside its window: each a replay
            assert client.post(VERIFY, headers=bearer(token), json={"code": code}).json() == {
                "error": "verification failed"
            }
        reasons = [
            r[0]
            for r in deployed.gateway.store.rows(
                "SELECT reason FROM mfa_attempts WHERE email = ? AND success = 0", (MFA_USER,)
            )
        ]
        assert reasons == ["replay_detected"] * 4
        assert deployed.gateway.mfa.attempts(MFA_USER, failed=True) == 4


def test_login_state_is_deleted_when_complete_answers_200(deployed: RunningGateway) -> None:
    with http(deployed) as client:
        start = client.post(START).json()
        deployed.gateway.complete_browser_login(start["state"], "developer@example.com")
        first = client.post(COMPLETE, json=complete_body(start))
        assert first.status_code == 200
        for _ in range(2):  # a lost 200 is a lost login: the state is gone
            again = client.post(COMPLETE, json=complete_body(start))
            assert (again.status_code, again.json()) == (400, {"error": "invalid or expired state"})
        assert deployed.gateway.login.state(start["state"]) is None
