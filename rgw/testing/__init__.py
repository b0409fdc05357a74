"""Test support for rgw: the reference gateway, a scripted browser and helpers to run them.

`running_gateway(settings)` serves a reference gateway (see docs/reference-gateway.md) on loopback
for a `with` block; `ScriptedBrowser` plays the user in the browser; `serving_gateway` serves one
on the caller's event loop for `rack-gateway dev-gateway` and the demo.

The names below are imported on first use (PEP 562), so that importing a small submodule such as
``rgw.testing.keyrings`` (a keyring backend a CLI subprocess loads) does not load the whole
reference gateway (Starlette, uvicorn, the OpenID Connect client) with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .browser import ScriptedBrowser
    from .gateway import Gateway, GatewaySettings, create_app
    from .server import RunningGateway, running_gateway, serving_gateway

_WHERE = {
    "Gateway": ".gateway",
    "GatewaySettings": ".gateway",
    "RunningGateway": ".server",
    "ScriptedBrowser": ".browser",
    "create_app": ".gateway",
    "running_gateway": ".server",
    "serving_gateway": ".server",
}

__all__ = [
    "Gateway",
    "GatewaySettings",
    "RunningGateway",
    "ScriptedBrowser",
    "create_app",
    "running_gateway",
    "serving_gateway",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value
