"""The deployed gateway's rate limit, as the reference gateway models it (moved clock, no sleeps)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from rgw.testing.gateway.settings import DEPLOYED_RATE_LIMIT

from .gateway_helpers import CLI_MFA, COMPLETE, START, FakeClock, bearer, complete_body, login

BODY = b'{"error":"rate limit exceeded","message":"too many authentication attempts, please try again later"}'
SETUP_IP = {"X-Forwarded-For": "192.0.2.99"}  # setup requests spend another client's budget


@pytest.fixture
def deployed(clock: FakeClock) -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=False, clock=clock)) as gw:
        yield gw


@pytest.fixture
def client(deployed: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployed.url, timeout=30) as c:
        yield c


def statuses(
    client: httpx.Client, n: int, path: str = START, method: str = "POST", headers: dict[str, str] | None = None
) -> list[int]:
    return [client.request(method, path, headers=headers).status_code for _ in range(n)]


def spend(client: httpx.Client, headers: dict[str, str] | None = None) -> None:
    """Empty the login bucket of the client the headers name."""
    assert statuses(client, 20, headers=headers) == [200] * 20
    assert client.post(START, headers=headers).status_code == 429


def test_burst_of_20_then_10_per_second(client: httpx.Client, clock: FakeClock) -> None:
    assert statuses(client, 21) == [200] * 20 + [429]
    clock.advance(0.1)  # one token
    assert statuses(client, 2) == [200, 429]
    clock.advance(0.05)  # half a token is not enough
    assert statuses(client, 1) == [429]
    clock.advance(1.0)
    assert statuses(client, 11) == [200] * 10 + [429]
    clock.advance(3600)  # the bucket holds at most the burst
    assert statuses(client, 21) == [200] * 20 + [429]


def test_the_refusal_is_the_deployed_gateways(client: httpx.Client, clock: FakeClock) -> None:
    allowed = client.post(START)
    assert not any(name.lower().startswith("x-ratelimit") for name in allowed.headers)
    assert "retry-after" not in allowed.headers
    for _ in range(19):
        client.post(START)
    refused = client.post(START)
    assert refused.status_code == 429
    assert refused.content == BODY
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["Retry-After"] == "0"
    assert refused.headers["X-RateLimit-Limit"] == "10"  # requests per second, not the burst
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == str(int(clock()) + 1)


def test_client_ip_is_forwarded_for_then_real_ip_then_peer(client: httpx.Client) -> None:
    spend(client)  # the peer, 127.0.0.1
    assert client.post(START, headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    assert client.post(START, headers={"X-Real-IP": "198.51.100.2"}).status_code == 200

    proxied = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1", "X-Real-IP": "198.51.100.3"}
    spend(client, proxied)
    # only the first X-Forwarded-For entry counts, and it wins over X-Real-IP
    assert client.post(START, headers={"X-Forwarded-For": "203.0.113.7, 10.9.9.9"}).status_code == 429
    assert client.post(START, headers={"X-Forwarded-For": "203.0.113.7 ,10.1.1.1"}).status_code == 429
    assert client.post(START, headers={"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "1.2.3.4"}).status_code == 429
    assert client.post(START, headers={"X-Real-IP": "198.51.100.3"}).status_code == 200

    spend(client, {"X-Real-IP": "198.51.100.4"})
    assert client.post(START, headers={"X-Real-IP": "198.51.100.4"}).status_code == 429
    assert (
        client.post(START, headers={"X-Real-IP": "198.51.100.4", "X-Forwarded-For": "198.51.100.5"}).status_code == 200
    )


def test_every_login_route_shares_one_bucket(deployed: RunningGateway, client: httpx.Client) -> None:
    session = login(client, deployed)["token"]  # 2 requests: start, complete
    start = client.post(START).json()
    assert statuses(client, 17) == [200] * 17
    limited = [
        client.get("/api/v1/auth/cli/callback", params={"state": start["state"], "code": "c"}),  # the browser's
        client.get("/api/v1/auth/cli/mfa", params={"state": start["state"]}),
        client.post(COMPLETE, json=complete_body(start)),
        client.post(CLI_MFA, json={"state": start["state"], "code": "123456"}),
        client.get("/api/v1/auth/web/logout", headers=bearer(session)),
        client.post("/auth/mfa", data={"state": start["state"], "code": "123456"}),  # the web UI's MFA form
    ]
    assert [r.status_code for r in limited] == [429] * 6
    assert all(r.content == BODY for r in limited)
    # not login routes
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/info", headers=bearer(session)).status_code == 200
    assert client.get("/api/v1/rack-proxy/apps", headers=bearer(session)).status_code == 200
    assert client.get(start["auth_url"]).status_code == 200  # the identity provider's page
    # an unknown path under /auth/cli/ is no route, so not limited: an empty 404
    r = client.get("/api/v1/auth/cli/nothing-here")
    assert (r.status_code, r.content) == (404, b"")


def test_mfa_routes_have_their_own_bucket_after_authentication(deployed: RunningGateway, client: httpx.Client) -> None:
    with httpx.Client(base_url=deployed.url, headers=SETUP_IP) as setup:
        session = login(setup, deployed)["token"]
    spend(client)  # the login bucket is empty: the MFA one is not
    # without credentials the answer is 401 before the limit is consulted, and costs nothing
    assert statuses(client, 25, "/api/v1/auth/mfa/status", "GET") == [401] * 25
    assert statuses(client, 21, "/api/v1/auth/mfa/status", "GET", bearer(session)) == [200] * 20 + [429]
    r = client.post("/api/v1/auth/mfa/verify", headers=bearer(session), json={"code": "123456"})
    assert (r.status_code, r.content) == (429, BODY)


def test_only_post_api_tokens_is_limited_and_on_its_own(deployed: RunningGateway, client: httpx.Client) -> None:
    automation = deployed.gateway.create_api_token("automation", role="admin")  # API tokens need no MFA
    spend(client)
    assert statuses(client, 30, "/api/v1/api-tokens", "GET", bearer(automation)) == [200] * 30
    assert statuses(client, 5, "/api/v1/api-tokens/permissions", "GET", bearer(automation)) == [200] * 5
    created = [
        client.post(
            "/api/v1/api-tokens",
            headers=bearer(automation),
            json={"name": f"ci-{n}", "permissions": ["convox:app:list"]},
        ).status_code
        for n in range(21)
    ]
    assert created == [200] * 20 + [429]
    # a refusal from another group does not touch the MFA bucket
    assert client.get("/api/v1/auth/mfa/status", headers=bearer(automation)).status_code == 403


def test_refusals_are_counted_by_path(deployed: RunningGateway, client: httpx.Client) -> None:
    start = client.post(START).json()
    deployed.gateway.reset_counts()
    for _ in range(25):  # a CLI polling far too fast
        client.post(COMPLETE, json=complete_body(start))
    callback = client.get("/api/v1/auth/cli/callback", params={"state": start["state"], "code": "x"})
    assert callback.status_code == 429  # the user's browser is refused: the login cannot complete
    gw = deployed.gateway
    assert gw.rate_limited_count("/api/v1/auth/cli/callback") == 1
    assert gw.rate_limited_count("/api/v1/auth/cli/complete") == 6
    assert gw.rate_limited_count("/api/v1/auth/cli/") == 7
    assert gw.rate_limited_count() == 7
    assert gw.request_count("/api/v1/auth/cli/") == 26  # refused requests were received too
    gw.reset_counts()
    assert (gw.rate_limited_count(), gw.request_count()) == (0, 0)


def test_on_by_default_only_without_extensions(clock: FakeClock) -> None:
    assert GatewaySettings(extensions=False).rate_limit == DEPLOYED_RATE_LIMIT == (10.0, 20)
    assert GatewaySettings().rate_limit is None
    assert GatewaySettings(extensions=False, rate_limit=None).rate_limit is None
    assert GatewaySettings(rate_limit=(10, 20)).rate_limit == (10.0, 20)
    assert GatewaySettings(rate_limit=(0.5, 2)).rate_limit == (0.5, 2)
    for bad in ((0.0, 20), (10.0, 0)):
        with pytest.raises(ValueError, match="rate_limit"):
            GatewaySettings(rate_limit=bad)
    with running_gateway(GatewaySettings(clock=clock)) as gw, httpx.Client(base_url=gw.url) as client:
        assert statuses(client, 30) == [200] * 30
    with (
        running_gateway(GatewaySettings(extensions=False, rate_limit=None, clock=clock)) as gw,
        httpx.Client(base_url=gw.url) as client,
    ):
        assert statuses(client, 30) == [200] * 30
    with (
        running_gateway(GatewaySettings(rate_limit=DEPLOYED_RATE_LIMIT, clock=clock)) as gw,
        httpx.Client(base_url=gw.url) as client,
    ):
        assert statuses(client, 21) == [200] * 20 + [429]
    with (
        running_gateway(GatewaySettings(rate_limit=(0.5, 2), clock=clock)) as gw,
        httpx.Client(base_url=gw.url) as client,
    ):
        assert statuses(client, 3) == [200, 200, 429]
        r = client.post(START)
        assert (r.headers["Retry-After"], r.headers["X-RateLimit-Limit"]) == ("2", "0")  # int(1/rate), int(rate)
        clock.advance(2.0)
        assert statuses(client, 2) == [200, 429]
