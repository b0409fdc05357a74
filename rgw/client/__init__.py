"""Speaking HTTP to a gateway: ``GatewayClient`` (``gateway``), the translation of every answer and
failure into ``RgwError``s (``answers``), the shared request budget (``budget``), step-up MFA as an
auth flow (``stepup``) and the bounded transport (``transport``).  The only package besides
``rgw.testing`` that imports httpx, so it is imported lazily by the CLI, never on the start-up path
of local commands.
"""

from rgw.client.answers import (
    check_response,
    classify_transport_error,
    login_refused,
    parse_json,
    unreachable,
)
from rgw.client.gateway import (
    MAX_LONG_POLL,
    USER_AGENT,
    GatewayClient,
    StepUpFactory,
    Timeouts,
    default_device_os,
    default_ssl_context,
)
from rgw.client.stepup import MAX_STEP_UP_TRIES, StepUpProvider

__all__ = [
    "MAX_LONG_POLL",
    "MAX_STEP_UP_TRIES",
    "USER_AGENT",
    "GatewayClient",
    "StepUpFactory",
    "StepUpProvider",
    "Timeouts",
    "check_response",
    "classify_transport_error",
    "default_device_os",
    "default_ssl_context",
    "login_refused",
    "parse_json",
    "unreachable",
]
