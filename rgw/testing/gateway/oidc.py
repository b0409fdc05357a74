"""The reference gateway as an OpenID Connect client: sign-in through any provider (Google or another).

`OidcClient` does what the deployed gateway does with Google (go-oidc + x/oauth2 there): discovery
(`<issuer>/.well-known/openid-configuration`, checked with Authlib's `OpenIDProviderMetadata`, whose
`issuer` must be the configured one), the authorization-code request with PKCE S256 and a nonce
(`authorization_url`), the token exchange with the client's secret (`identify`), and the ID token's
signature (joserfc, against the provider's JWKS, fetched again once for an unknown key id) and claims
(Authlib's `CodeIDToken`: `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`, `at_hash`).  As on the deployed
gateway the PKCE verifier is the login's `code_verifier`; the nonce is derived from the login state
with the gateway's secret, so nothing more is stored.  Every request to the provider has a timeout.

Failures a user can cause or see raise `SignInFailed` with a short sentence (the login's error or the
browser's error page); a provider that cannot be discovered raises `ProviderUnavailable`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

#: Seconds of clock difference tolerated on `exp`/`iat` (Authlib's default for ID tokens).
LEEWAY = 120
_MAX_BODY = 1 << 20


class ProviderUnavailable(Exception):
    """The identity provider's configuration could not be fetched or is not usable."""


class SignInFailed(Exception):
    """The sign-in at the identity provider did not give a usable identity; `text` says why."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class Identity:
    """Who signed in, from a verified ID token."""

    email: str
    name: str | None = None
    #: Google's `hd` claim: the Workspace domain of the account (absent for other accounts).
    hosted_domain: str | None = None
    subject: str = ""


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    signing_algorithms: tuple[str, ...]
    token_auth_method: str


class OidcClient:
    """One relying-party registration (issuer, client id and secret) at an OpenID Connect provider."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        *,
        secret: str,
        scopes: str = "openid email profile",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not issuer.startswith(("https://", "http://")):
            raise ValueError(f"the OIDC issuer must be an http(s) URL, not {issuer!r}")
        if not client_id:
            raise ValueError("an OIDC client id is required")
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self.timeout = timeout
        self.clock = clock
        self._secret = secret.encode()
        self._transport = transport
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None

    # -- the pieces the login flow uses -------------------------------------------------------

    def nonce(self, state: str) -> str:
        """The nonce of the login `state` (HMAC of the state with the gateway's secret)."""
        digest = hmac.new(self._secret, b"oidc-nonce:" + state.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def discover(self) -> ProviderMetadata:
        """The provider's configuration (fetched once, then kept)."""
        if self._metadata is None:
            doc = await self._get_json(
                self.issuer + "/.well-known/openid-configuration", "discovery", failure=ProviderUnavailable
            )
            self._metadata = _metadata(doc, self.issuer)
        return self._metadata

    def authorization_url(
        self,
        metadata: ProviderMetadata,
        *,
        state: str,
        code_verifier: str,
        redirect_uri: str,
        hosted_domain: str | None = None,
    ) -> str:
        """Where the browser signs in: the authorization-code request with PKCE S256 and a nonce.

        `hosted_domain` is sent as Google's `hd` hint (the account chooser shows only that domain);
        the ID token is checked whatever the provider did with it.
        """
        extra: dict[str, str] = {
            "nonce": self.nonce(state),
            "code_challenge": create_s256_code_challenge(code_verifier),
            "code_challenge_method": "S256",
            "prompt": "select_account",
        }
        if hosted_domain:
            extra["hd"] = hosted_domain
        url: str = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=self.scopes,
            state=state,
            **extra,
        )
        return url

    async def identify(self, *, state: str, code: str, code_verifier: str, redirect_uri: str) -> Identity:
        """Exchange `code` at the token endpoint and return the verified ID token's identity."""
        metadata = await self.discover()
        tokens = await self._exchange(metadata, code, code_verifier, redirect_uri)
        raw = tokens.get("id_token")
        if not isinstance(raw, str) or not raw:
            raise SignInFailed("the identity provider returned no ID token")
        access_token = tokens.get("access_token")
        claims = await self._verified_claims(
            metadata, raw, state, access_token if isinstance(access_token, str) else None
        )
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise SignInFailed("the identity provider did not share an email address (scope email)")
        email = email.strip().lower()
        if claims.get("email_verified") is False:
            raise SignInFailed(f"email address not verified: {email}")
        name, hd = claims.get("name"), claims.get("hd")
        return Identity(
            email=email,
            name=name if isinstance(name, str) else None,
            hosted_domain=hd.strip().lower() if isinstance(hd, str) and hd.strip() else None,
            subject=str(claims.get("sub", "")),
        )

    # -- HTTP ---------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout), trust_env=False, follow_redirects=False, transport=self._transport
        )

    async def _get_json(self, url: str, what: str, *, failure: type[Exception] = SignInFailed) -> dict[str, Any]:
        try:
            async with self._client() as client:
                response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise failure(f"identity provider unreachable ({what}: {type(exc).__name__})") from exc
        if response.status_code != 200:
            raise failure(f"identity provider {what} answered {response.status_code}")
        return _json_object(response, what, failure)

    async def _exchange(
        self, metadata: ProviderMetadata, code: str, code_verifier: str, redirect_uri: str
    ) -> dict[str, Any]:
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        auth = ClientAuth(self.client_id, self.client_secret, metadata.token_auth_method)
        url, headers, body = auth.prepare("POST", metadata.token_endpoint, headers, body)
        try:
            async with self._client() as client:
                response = await client.post(url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            raise SignInFailed(f"identity provider unreachable (token exchange: {type(exc).__name__})") from exc
        answer = _json_object(response, "token exchange", SignInFailed)
        if response.status_code != 200 or "error" in answer:
            error = answer.get("error")
            reason = error if isinstance(error, str) and error else f"status {response.status_code}"
            raise SignInFailed(f"the identity provider refused the code ({reason})")
        return answer

    async def _key_set(self, metadata: ProviderMetadata, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            doc = await self._get_json(metadata.jwks_uri, "keys")
            try:
                self._keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise SignInFailed("the identity provider's keys could not be read") from exc
        return self._keys

    async def _verified_claims(
        self, metadata: ProviderMetadata, raw: str, state: str, access_token: str | None
    ) -> Mapping[str, Any]:
        registry = JWSRegistry(algorithms=list(metadata.signing_algorithms))
        try:
            try:
                token = jwt.decode(raw, await self._key_set(metadata), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys since they were fetched
                token = jwt.decode(raw, await self._key_set(metadata, refresh=True), registry=registry)
        except BadSignatureError as exc:
            raise SignInFailed("the ID token's signature does not match the identity provider's keys") from exc
        except InvalidKeyIdError as exc:
            raise SignInFailed("the ID token is signed with a key the identity provider does not publish") from exc
        except JoseError as exc:
            raise SignInFailed(f"the ID token could not be read ({exc.error or 'invalid'})") from exc
        params: dict[str, Any] = {"nonce": self.nonce(state), "client_id": self.client_id}
        if access_token:
            params["access_token"] = access_token
        options = {
            "iss": {"essential": True, "value": metadata.issuer},
            "aud": {"essential": True, "value": self.client_id},
        }
        claims = CodeIDToken(token.claims, token.header, options, params)
        try:
            claims.validate(now=int(self.clock()), leeway=LEEWAY)
        except ExpiredTokenError as exc:
            raise SignInFailed("the ID token has expired") from exc
        except ClaimError as exc:
            raise SignInFailed(f"the ID token's {exc.claim} claim is not valid for this gateway") from exc
        return dict(claims)


def _json_object(response: httpx.Response, what: str, failure: type[Exception]) -> dict[str, Any]:
    if len(response.content) > _MAX_BODY:
        raise failure(f"identity provider {what} answer is too large")
    try:
        data = response.json()
    except ValueError:
        raise failure(f"identity provider {what} answer is not JSON") from None
    if not isinstance(data, dict):
        raise failure(f"identity provider {what} answer is not a JSON object")
    return data


def _metadata(doc: dict[str, Any], issuer: str) -> ProviderMetadata:
    try:
        OpenIDProviderMetadata(doc).validate()
    except ValueError as exc:
        raise ProviderUnavailable(f"identity provider configuration is not valid: {exc}") from exc
    found = doc.get("issuer")
    if not isinstance(found, str) or found.rstrip("/") != issuer:
        raise ProviderUnavailable(f"identity provider configuration names issuer {found!r}, not {issuer!r}")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(key), str):
            raise ProviderUnavailable(f"identity provider configuration has no {key}")
    algorithms = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    # "none" would accept an unsigned token; HS256 would take the client secret as the key.
    usable = tuple(a for a in algorithms if isinstance(a, str) and a not in ("none",) and not a.startswith("HS"))
    if not usable:
        raise ProviderUnavailable("identity provider signs ID tokens with no algorithm this gateway accepts")
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    method = (
        "client_secret_basic"
        if "client_secret_basic" in methods
        else ("client_secret_post" if "client_secret_post" in methods else "client_secret_basic")
    )
    return ProviderMetadata(
        issuer=found,
        authorization_endpoint=doc["authorization_endpoint"],
        token_endpoint=doc["token_endpoint"],
        jwks_uri=doc["jwks_uri"],
        signing_algorithms=usable,
        token_auth_method=method,
    )
