"""Test support for rgw: the reference gateway, a scripted browser and helpers to run them.

`running_gateway(settings)` serves a reference gateway (see docs/reference-gateway.md) on loopback
for a `with` block; `ScriptedBrowser` plays the user in the browser; `serving_gateway` serves one
on the caller's event loop for `rack-gateway dev-gateway` and the demo.
"""

from .browser import ScriptedBrowser
from .gateway import Gateway, GatewaySettings, create_app
from .server import RunningGateway, running_gateway, serving_gateway

__all__ = [
    "Gateway",
    "GatewaySettings",
    "RunningGateway",
    "ScriptedBrowser",
    "create_app",
    "running_gateway",
    "serving_gateway",
]
