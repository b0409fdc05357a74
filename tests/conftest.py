"""Fixtures for every tier.  The suite runs in parallel (``tests/run.py``, pytest-xdist): a test gets
its own directories (``tmp_path``; ``XDG_CONFIG_HOME`` too, so that a CLI run without ``--config``
never touches a shared one), servers listen on ports the OS picks (port 0), and ``refused_url`` is
a port that refuses connections and stays so for the whole test.  A test that cannot share the
machine is marked ``@pytest.mark.serial("why")`` (CONTRIBUTING.md)."""

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(autouse=True)
def _own_config_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$XDG_CONFIG_HOME`` of this test alone: the default config directory is never one another test uses."""
    home = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL that refuses connections: its port is bound and never listened on, and held for
    the whole test, so that no server of a test running beside this one can be given it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[Provider]:
    """One real OpenID Connect provider (oidc-provider-mock, a subprocess on loopback) for the session."""
    with running_provider() as provider:
        yield provider


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--serial",
        choices=("include", "exclude", "only"),
        default="include",
        help="tests marked serial: run them (default), leave them out (the parallel pass of tests/run.py), "
        "or run only them (its serial pass)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # A run started in the background by a non-interactive shell (`nohup ... &`, some CI runners) has
    # SIGINT ignored, and every process it starts inherits that: the CLI and the reference gateway
    # would never see the Ctrl-C that tests send them (each such test then waits out its timeout and
    # leaves the process running).  A handler of our own is reset to the default in the processes we
    # start, so they get Ctrl-C as on a terminal.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers",
        "serial(reason): the test cannot share the machine with other tests (the reason says why); "
        "tests/run.py runs it alone, after the parallel pass",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--serial exclude|only`` keeps the tests marked ``serial`` out, or only them; a ``serial`` mark
    must say why."""
    for item in items:
        mark = item.get_closest_marker("serial")
        if mark is not None and not (mark.args and isinstance(mark.args[0], str) and mark.args[0].strip()):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.serial needs a reason: serial('why')")
    choice = config.getoption("serial")
    if choice == "include":
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (keep if (item.get_closest_marker("serial") is not None) == (choice == "only") else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
