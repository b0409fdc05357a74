import pytest

import tests.fuzzing  # noqa: F401 - registers and loads the Hypothesis profile (RGW_HYPOTHESIS_PROFILE)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
