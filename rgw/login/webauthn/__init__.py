"""WebAuthn with a USB security key: the CLI acts as the WebAuthn client itself.

The gateway's relying-party ID is the hostname of its URL (often ``127.0.0.1`` or ``localhost`` in
development), which fido2's high-level ``Fido2Client`` refuses, and the origin it expects is its base
URL exactly as we know it.  So this package builds ``clientDataJSON`` itself (``messages``: options in,
``assertion_response`` / ``registration_response`` JSON out, as py_webauthn verifies them) and speaks
CTAP2 to the key through ``fido2.ctap2.Ctap2`` (``ctap``: devices, the blocking exchange in a worker
thread, cancellation, error mapping).  A deadline or a cancellation sets a ``threading.Event`` that
fido2 turns into a CTAPHID cancel.  fido2 is imported only inside functions: CLI start-up must not pay
for it, and importing this package must not import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rgw.errors import MfaError as MfaError  # re-exported: callers catch ``webauthn.MfaError``
from rgw.login.webauthn.ctap import assert_blocking, find_devices, run_exchange
from rgw.login.webauthn.messages import (
    assertion_request,
    b64url_decode,
    b64url_encode,
    origin_of,
)

__all__ = [
    "b64url_decode",
    "b64url_encode",
    "find_devices",
    "get_assertion",
    "origin_of",
]


async def get_assertion(
    public_key: Mapping[str, Any],
    origin: str,
    *,
    devices: Sequence[Any] | None = None,
    timeout: float = 60.0,  # noqa: ASYNC109 - the deadline must also cancel the key, see run_exchange
    on_touch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Sign the gateway's challenge with a security key: the ``assertion_response`` JSON.

    ``public_key`` is ``options.publicKey`` from the gateway, ``origin`` its base URL.  Keys are tried
    in order (``devices``, default: every USB key found) until one holds an allowed credential, probed
    without a touch; ``on_touch`` runs on the event loop just before that key waits for the user.  The
    deadline is ``timeout`` seconds, or the options' shorter ``timeout``.
    """
    req = assertion_request(public_key, origin, timeout)
    return await run_exchange(assert_blocking, req, devices, on_touch)
