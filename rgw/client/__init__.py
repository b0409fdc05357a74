"""Speaking HTTP to a gateway: ``GatewayClient`` (``gateway``) and the translation of every answer
and failure into ``RgwError``s (``answers``).  The only package besides ``rgw.testing`` that imports
httpx, so it is imported lazily by the CLI, never on the start-up path of local commands.
"""

from rgw.client.answers import (
    MfaRejected,
    check_response,
    classify_transport_error,
    login_refused,
    parse_json,
    unreachable,
)
from rgw.client.gateway import (
    MAX_LONG_POLL,
    MAX_STEP_UP_TRIES,
    USER_AGENT,
    GatewayClient,
    StepUpProvider,
    Timeouts,
    default_device_os,
    default_ssl_context,
)

__all__ = [
    "MAX_LONG_POLL",
    "MAX_STEP_UP_TRIES",
    "USER_AGENT",
    "GatewayClient",
    "MfaRejected",
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
