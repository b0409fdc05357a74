"""Fixtures for the integration tier: reference gateways over loopback and the CLI run in-process."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway
from tests.integration import procs
from tests.leaks import WATCH


@pytest.fixture(autouse=True)
def _reap_spawned() -> Iterator[None]:
    yield
    procs.reap()


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings()) as gw:
        yield gw


@pytest.fixture
def deployed_gateway() -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(extensions=False)) as gw:
        yield gw


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@dataclass
class Cli:
    """Runs ``rack-gateway`` in-process with its own config directory and environment."""

    config_dir: Path
    browser: Any = None
    environ: Mapping[str, str] | None = None

    async def __call__(self, *args: str, browser: Any = None, env: Mapping[str, str] | None = None) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        app = App(
            options=Options(config_dir=self.config_dir),
            environ=dict(env if env is not None else (self.environ or {})),
            out=out,
            err=err,
            browser=browser or self.browser,
            interactive=False,
        )
        code = await run(list(args), obj=app)
        result = CliResult(code, out.getvalue(), err.getvalue())
        WATCH.record(args, result.out, result.err, where="in-process")
        return result

    def config(self) -> dict[str, Any]:
        return dict(json.loads((self.config_dir / "config.json").read_text()))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(config_dir=tmp_path / "config", browser=ScriptedBrowser(email="developer@example.com"))
