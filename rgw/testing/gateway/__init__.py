"""The reference gateway: a Starlette app speaking the rack gateway's CLI protocol (and [ext]).

`GatewaySettings` configures it, `Gateway` holds its state behind thread-safe synchronous methods,
and `create_app` builds the ASGI app; `rgw.testing.server` runs it with uvicorn on loopback.
"""

from .app import create_app
from .core import Gateway
from .settings import GatewaySettings

__all__ = ["Gateway", "GatewaySettings", "create_app"]
