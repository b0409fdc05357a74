from collections.abc import Iterator

import pytest

import tests.fuzzing  # noqa: F401 - registers and loads the Hypothesis profile (RGW_HYPOTHESIS_PROFILE)
from tests.leaks import WATCH
from tests.oidc_provider import Provider, running_provider


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_token_in_cli_output() -> Iterator[None]:
    """Fail a test whose captured CLI output carried a token (see tests/leaks.py)."""
    WATCH.take()
    yield
    leaks = WATCH.take()
    assert not leaks, "a token appeared in CLI output:\n" + "\n".join(str(leak) for leak in leaks)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[Provider]:
    """One real OpenID Connect provider (oidc-provider-mock, a subprocess on loopback) for the session."""
    with running_provider() as provider:
        yield provider
