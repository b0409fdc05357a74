"""The reference gateway's OpenID Connect client against a provider played by ``httpx.MockTransport``.

The fake provider signs ID tokens with its own RSA key (joserfc), so every check the client makes on
a token (signature, issuer, audience, nonce, expiry, key rotation) can be made to fail on purpose;
the real provider (oidc-provider-mock) runs in ``tests/testing/test_gateway_oidc.py``.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from rgw.testing.gateway.oidc import OidcClient, ProviderUnavailable, SignInFailed

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"
CLIENT_ID = "rack-gateway"
SECRET = "client-secret"
STATE = "s" * 43
VERIFIER = "v" * 128
REDIRECT = "https://gw.example/api/v1/auth/cli/callback"


class FakeProvider:
    """Discovery, keys and a token endpoint; `claims` and `key` decide what the ID token says."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.published = [self.key]
        self.signing_key = self.key
        self.algorithms = ["RS256"]
        self.token_requests: list[httpx.Request] = []
        self.jwks_fetches = 0
        self.discovery: dict[str, Any] = {
            "issuer": ISSUER,
            "authorization_endpoint": ISSUER + "/authorize",
            "token_endpoint": ISSUER + "/token",
            "jwks_uri": ISSUER + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": self.algorithms,
        }
        self.claims: dict[str, Any] = {}
        self.token_status = 200

    def id_token_for(self, nonce: str, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "u-1",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "email": "developer@example.com",
            "name": "Developer",
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if path == "/jwks":
            self.jwks_fetches += 1
            return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.published]})
        if path == "/token":
            self.token_requests.append(request)
            if self.token_status != 200:
                return httpx.Response(self.token_status, json={"error": "invalid_grant"})
            header = {"alg": "RS256", "kid": self.signing_key.kid}
            return httpx.Response(
                200,
                json={
                    "access_token": "at-1",
                    "token_type": "Bearer",
                    "id_token": jwt.encode(header, self.claims, self.signing_key),
                },
            )
        return httpx.Response(404)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


def client_for(provider: FakeProvider, **kwargs: Any) -> OidcClient:
    return OidcClient(
        ISSUER, CLIENT_ID, SECRET, secret="gateway-secret", transport=httpx.MockTransport(provider.handler), **kwargs
    )


async def identify(client: OidcClient) -> Any:
    return await client.identify(state=STATE, code="code-1", code_verifier=VERIFIER, redirect_uri=REDIRECT)


async def test_the_authorization_url_asks_for_a_code_with_pkce_s256_a_nonce_and_the_domain_hint(
    provider: FakeProvider,
) -> None:
    client = client_for(provider)
    url = client.authorization_url(
        await client.discover(), state=STATE, code_verifier=VERIFIER, redirect_uri=REDIRECT, hosted_domain="example.com"
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == ISSUER + "/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
    assert query == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "openid email profile",
        "state": STATE,
        "nonce": client.nonce(STATE),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "select_account",
        "hd": "example.com",
    }
    assert client.nonce(STATE) != client.nonce(STATE[:-1] + "t")  # one nonce per login


async def test_a_good_code_gives_the_identity_and_the_exchange_proves_the_client_and_the_verifier(
    provider: FakeProvider,
) -> None:
    client = client_for(provider)
    provider.claims = provider.id_token_for(client.nonce(STATE), hd="Example.com")
    identity = await identify(client)
    assert (identity.email, identity.name, identity.hosted_domain, identity.subject) == (
        "developer@example.com",
        "Developer",
        "example.com",
        "u-1",
    )
    [request] = provider.token_requests
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {
        "grant_type": "authorization_code",
        "code": "code-1",
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
    }
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {basic}"


def forged_by_another_key(provider: FakeProvider) -> None:
    provider.signing_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, other key


@pytest.mark.parametrize(
    ("change", "text"),
    [
        pytest.param(
            forged_by_another_key,
            "the ID token's signature does not match the identity provider's keys",
            id="signature",
        ),
        pytest.param(
            lambda p: p.claims.update(iss="https://evil.example"),
            "the ID token's iss claim is not valid for this gateway",
            id="issuer",
        ),
        pytest.param(
            lambda p: p.claims.update(aud="someone-else"),
            "the ID token's aud claim is not valid for this gateway",
            id="audience",
        ),
        pytest.param(
            lambda p: p.claims.update(nonce="replayed"),
            "the ID token's nonce claim is not valid for this gateway",
            id="nonce",
        ),
        pytest.param(
            lambda p: p.claims.pop("nonce"), "the ID token's nonce claim is not valid for this gateway", id="no-nonce"
        ),
        pytest.param(lambda p: p.claims.update(exp=int(time.time()) - 600), "the ID token has expired", id="expired"),
        pytest.param(
            lambda p: p.claims.pop("email"),
            "the identity provider did not share an email address (scope email)",
            id="no-email",
        ),
        pytest.param(
            lambda p: p.claims.update(email_verified=False),
            "email address not verified: developer@example.com",
            id="unverified",
        ),
        pytest.param(
            lambda p: setattr(p, "token_status", 400),
            "the identity provider refused the code (invalid_grant)",
            id="refused-code",
        ),
    ],
)
async def test_a_token_that_fails_a_check_is_refused_with_the_reason(
    provider: FakeProvider, change: Callable[[FakeProvider], None], text: str
) -> None:
    client = client_for(provider)
    provider.claims = provider.id_token_for(client.nonce(STATE))
    change(provider)
    with pytest.raises(SignInFailed) as caught:
        await identify(client)
    assert caught.value.text == text


async def test_keys_are_fetched_again_once_when_the_provider_rotated_them(provider: FakeProvider) -> None:
    client = client_for(provider)
    provider.claims = provider.id_token_for(client.nonce(STATE))
    assert (await identify(client)).email == "developer@example.com"
    assert provider.jwks_fetches == 1
    provider.signing_key = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    provider.published = [provider.signing_key]
    assert (await identify(client)).email == "developer@example.com"
    assert provider.jwks_fetches == 2


async def test_a_key_the_provider_does_not_publish_is_refused(provider: FakeProvider) -> None:
    client = client_for(provider)
    provider.claims = provider.id_token_for(client.nonce(STATE))
    provider.signing_key = RSAKey.generate_key(2048, parameters={"kid": "stranger"})
    with pytest.raises(SignInFailed) as caught:
        await identify(client)
    assert caught.value.text == "the ID token is signed with a key the identity provider does not publish"
    assert provider.jwks_fetches == 2  # the cached keys, then once more in case they were rotated


@pytest.mark.parametrize(
    ("doc", "text"),
    [
        pytest.param(
            {"issuer": "https://other.example"},
            "identity provider configuration names issuer 'https://other.example', not 'https://idp.example'",
            id="issuer-mismatch",
        ),
        pytest.param(
            {"id_token_signing_alg_values_supported": ["none", "HS256"]},
            'identity provider configuration is not valid: "RS256" MUST be included in '
            '"id_token_signing_alg_values_supported"',
            id="no-rs256",
        ),
    ],
)
async def test_discovery_refuses_a_provider_it_cannot_trust(
    provider: FakeProvider, doc: dict[str, Any], text: str
) -> None:
    provider.discovery.update(doc)
    with pytest.raises(ProviderUnavailable) as caught:
        await client_for(provider).discover()
    assert str(caught.value) == text


async def test_an_unreachable_provider_is_said_so() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = OidcClient(ISSUER, CLIENT_ID, SECRET, secret="s", transport=httpx.MockTransport(refuse))
    with pytest.raises(ProviderUnavailable) as caught:
        await client.discover()
    assert str(caught.value) == "identity provider unreachable (discovery: ConnectError)"


def test_the_nonce_is_bound_to_the_gateway_secret() -> None:
    a = OidcClient(ISSUER, CLIENT_ID, SECRET, secret="one")
    b = OidcClient(ISSUER, CLIENT_ID, SECRET, secret="two")
    assert a.nonce(STATE) != b.nonce(STATE)
    assert len(a.nonce(STATE)) == 43  # base64url of a SHA-256 digest, unpadded
