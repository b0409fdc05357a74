"""Fixtures shared by the reference gateway tests: a hand-moved clock, a gateway on it, a client for it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rgw.testing import GatewaySettings, RunningGateway, running_gateway

from .gateway_helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gw(clock: FakeClock) -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(clock=clock)) as running:
        yield running


@pytest.fixture
def client(gw: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        yield c
