"""The transport under every ``GatewayClient``: each round trip bounded in time and in size.

httpx's timeouts bound each read, so an answer dripped a byte every few seconds never times out,
and a body of any size is read into memory.  ``BoundedTransport`` wraps the real transport: every
round trip has an overall bound (``fail_after``, ``total`` plus the read timeout: a bound on one
round trip, not a deadline; the command's deadline is the enclosing cancel scope, which cuts a
round trip in flight by itself, see ``rgw.deadline``), and the body is read here, at most
``max_body`` bytes of it (a compressed body is decompressed here too, under the same cap, so a
"zip bomb" cannot grow past it).  Only the round trip is timed, not what happens between round
trips of one request (a person typing a step-up MFA code).
"""

from __future__ import annotations

import time
import zlib

import anyio
import httpx

from rgw import trace
from rgw.errors import GatewayError

#: The largest answer read from a gateway: its JSON answers are a few kB.
MAX_BODY = 4 * 1024 * 1024


def _trace(request: httpx.Request, started: float, outcome: str) -> None:
    """``-v``: ``GET https://gw/api/v1/info -> 200 (12 ms)``; query values hidden, no header, no body."""
    if trace.enabled():
        elapsed = (time.perf_counter() - started) * 1000
        trace.debug("%s %s -> %s (%.0f ms)", request.method, trace.redact_url(str(request.url)), outcome, elapsed)


def _decompressor(encoding: str) -> zlib._Decompress | None:
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


def _joinable(base: httpx.URL, location: str) -> bool:
    try:
        base.join(location)
    except (httpx.InvalidURL, ValueError):
        return False
    return True


class BoundedTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        total: float,
        max_body: int = MAX_BODY,
    ) -> None:
        self.inner = inner
        self.total = total
        self.max_body = max_body

    def _limit(self, request: httpx.Request) -> float:
        timeouts = request.extensions.get("timeout") or {}
        read = timeouts.get("read") or 0.0
        return self.total + float(read)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            with anyio.fail_after(self._limit(request)):
                response = await self.inner.handle_async_request(request)
                try:
                    body = await self._read(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            _trace(request, started, "no answer in time")
            raise httpx.ReadTimeout("the gateway's answer took too long", request=request) from None
        except Exception as exc:
            _trace(request, started, f"failed ({type(exc).__name__})")
            raise
        _trace(request, started, str(response.status_code))
        if response.has_redirect_location and not _joinable(request.url, response.headers["location"]):
            # httpx would report it as a protocol error, which reads as a connection reset.
            raise GatewayError("gateway redirected to an invalid URL", status=response.status_code)
        headers = httpx.Headers(response.headers)
        if "content-encoding" in headers:
            del headers["content-encoding"]
            headers["content-length"] = str(len(body))
        return httpx.Response(response.status_code, headers=headers, content=body, extensions=response.extensions)

    async def _read(self, response: httpx.Response) -> bytes:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        decompressor = _decompressor(encoding)
        if decompressor is None and encoding not in ("identity", ""):
            raise GatewayError(f"gateway sent a body in an encoding rgw does not read ({encoding[:40]})")
        chunks: list[bytes] = []
        size = 0
        assert isinstance(response.stream, httpx.AsyncByteStream)
        async for chunk in response.stream:
            if decompressor is not None:
                try:
                    chunk = decompressor.decompress(chunk, self.max_body + 1 - size)
                except zlib.error as exc:
                    raise GatewayError(f"gateway sent a broken {encoding} body") from exc
            size += len(chunk)
            if size > self.max_body:
                raise GatewayError(
                    f"gateway sent more than {self.max_body // (1024 * 1024)} MiB; not reading the rest",
                    hint="Check that the URL points at a rack gateway, not a file server or another service.",
                )
            chunks.append(chunk)
        if decompressor is not None:
            rest = decompressor.flush()
            if size + len(rest) > self.max_body:
                raise GatewayError(f"gateway sent more than {self.max_body // (1024 * 1024)} MiB; not reading the rest")
            chunks.append(rest)
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self.inner.aclose()
