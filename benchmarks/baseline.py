"""A login client that behaves like the deployed Go CLI, for the benchmarks to compare against.

It does what the deployed ``rack-gateway`` Go binary does while a login is in progress: one
``POST /auth/cli/start``, then ``POST /auth/cli/complete`` in a loop that sleeps a fixed second
after every ``202``, gives up on the first error of any kind (transport error, unexpected status,
unreadable body) and after a 2-minute deadline.  No long polling, no loopback, no retries.  On a
``200`` it writes the session into a plain ``config.json`` (one write, no lock), which is the
instant the benchmark calls "session obtained".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from rgw.models import DeviceInfo

POLL_INTERVAL = 1.0
DEADLINE = 120.0
HTTP_TIMEOUT = 30.0


@dataclass
class BaselineResult:
    """What one baseline login ended with: a token, or the error it aborted on."""

    token: str | None = None
    error: str | None = None
    #: ``time.time()`` right after the session was written (None when the login failed).
    obtained_at: float | None = None


async def baseline_login(
    url: str,
    *,
    device: DeviceInfo,
    config_path: Path,
    on_auth_url: Callable[[str], None],
    transport: httpx.AsyncBaseTransport | None = None,
    interval: float = POLL_INTERVAL,
    deadline: float = DEADLINE,
) -> BaselineResult:
    """Log in the way the Go CLI does; ``on_auth_url`` plays "open the browser"."""
    async with httpx.AsyncClient(
        base_url=url, timeout=HTTP_TIMEOUT, transport=transport, follow_redirects=False, trust_env=False
    ) as http:
        try:
            response = await http.post("/api/v1/auth/cli/start", json={})
            if response.status_code != 200:
                return BaselineResult(error=f"start: HTTP {response.status_code}")
            start = response.json()
            on_auth_url(start["auth_url"])
            body = {
                "state": start["state"],
                "code_verifier": start["code_verifier"],
                "device_id": device.device_id,
                "device_name": device.device_name,
                "device_os": device.device_os,
                "client_version": device.client_version,
            }
            with anyio.move_on_after(deadline):
                while True:
                    response = await http.post("/api/v1/auth/cli/complete", json=body)
                    if response.status_code == 202:
                        await anyio.sleep(interval)
                        continue
                    if response.status_code != 200:
                        return BaselineResult(error=f"complete: HTTP {response.status_code}")
                    session: dict[str, Any] = response.json()
                    await _save(config_path, url, session)
                    return BaselineResult(token=session["token"], obtained_at=time.time())
            return BaselineResult(error="deadline")
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return BaselineResult(error=f"{type(exc).__name__}: {exc}"[:120])


async def _save(path: Path, url: str, session: dict[str, Any]) -> None:
    entry = {
        key: session.get(key)
        for key in ("token", "email", "expires_at", "session_id", "channel", "device_id", "device_name", "mfa_verified")
    }
    data = {"current": "bench", "gateways": {"bench": {"url": url, **entry}}}
    target = anyio.Path(path)
    await target.parent.mkdir(parents=True, exist_ok=True)
    await target.write_text(json.dumps(data, indent=2))
