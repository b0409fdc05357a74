from collections.abc import Iterator

import pytest

from tests.oidc_provider import Provider, running_provider


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[Provider]:
    """One real OpenID Connect provider (oidc-provider-mock, a subprocess on loopback) for the session."""
    with running_provider() as provider:
        yield provider
