"""Login completion latency, success rate and requests per login: our orchestrator against the Go CLI.

    python benchmarks/bench_login.py [--json out.json] [--logins N] [--seed S]

Four scenarios (clean or faulty link x reference gateway with or without extensions), two clients
in each: ``LoginFlow`` with its default options and retry policy ("rgw"), and ``baseline.py``, which
polls like the deployed Go CLI ("go-cli").  In each (scenario, client) ``--logins`` logins run at
once against the same in-process reference gateway; the "user" signs each one in directly on the
gateway (``complete_browser_login``) at a random moment of the wait, so the browser never crosses
the link under test.

- **latency**: from the instant the gateway marked the login complete (``login_completed_at``) to
  the instant the client had written the session to its config (rgw: the ``LoggedIn`` event, emitted
  after the save; go-cli: right after its ``config.json`` write).  Successful logins only.
- **success**: the session was saved and is valid on the gateway.  **lost**: sessions the gateway
  issued (the login state was redeemed) that the client never saved.
- **req/login**: ``/api/v1/auth/cli/*`` requests the gateway received, and requests the client sent
  (more on a faulty link: some never reach the gateway), per login.

The faulty link is ``FaultProxy`` with resets on 30% of new connections, 20% 503s, 200 ms ± 150 ms
delay on every answer, and a 3 s blackout (``hang``) starting once every login is waiting.  The
sign-in moments are stratified random over 1-3 s of the wait (clean link) or 0.5-6 s after the
blackout starts (faulty link), the same moments for both clients, so both meet the same mix of poll
phases.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
from baseline import baseline_login

from rgw.client import GatewayClient
from rgw.client.budget import RequestBudget
from rgw.config import ConfigStore
from rgw.errors import RgwError
from rgw.login import events as ev
from rgw.login.flow import LoginFlow
from rgw.models import DeviceInfo
from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from rgw.testing.faultproxy import BlackoutMode, FaultPlan, FaultProxy

FLAKY = FaultPlan(reset_rate=0.3, error_rate=0.2, delay=0.2, jitter=0.15)
BLACKOUT = 3.0
EMAIL = "developer@example.com"
CLI_PATHS = "/api/v1/auth/cli/"
#: When the user signs in, in seconds after every login is waiting (clean) or the blackout began (faulty).
CLEAN_MOMENTS = (1.0, 3.0)
FAULTY_MOMENTS = (0.5, 6.0)
RUN_TIMEOUT = 200.0  # the baseline gives up after 120 s; ours would only stop at its 10-minute deadline


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, counting the login requests a client sends and noting when the
    completing answer (``/complete`` 200) arrived, to split a login's latency into its parts."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent = 0
        self.completed_at: float | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(CLI_PATHS):
            self.sent += 1
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/complete") and response.status_code == 200:
            self.completed_at = time.time()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class UserBrowser:
    """The launcher the flow gets: "opens" the URL (the bench's user signs in on the gateway)."""

    async def open(self, url: str) -> bool:
        return True


@dataclass
class Trial:
    """One login of a batch."""

    index: int
    config: Path
    waiting: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    state: str | None = None
    token: str | None = None
    error: str | None = None
    obtained_at: float | None = None
    retries: int = 0

    def saw_auth_url(self, url: str) -> None:
        self.state = parse_qs(urlsplit(url).query)["state"][0]
        self.waiting.set()

    async def waiting_or_done(self) -> None:
        async with anyio.create_task_group() as tg:

            async def wait(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(wait, self.waiting)
            tg.start_soon(wait, self.done)


def device() -> DeviceInfo:
    return DeviceInfo(str(uuid.uuid4()), "bench-host", "linux/x86_64", "rgw-bench")


async def run_ours(url: str, trial: Trial, transport: CountingTransport, budget: RequestBudget | None = None) -> None:
    def emit(event: ev.LoginEvent) -> None:
        if isinstance(event, ev.BrowserOpening | ev.BrowserUnavailable):
            trial.saw_auth_url(event.auth_url)
        elif isinstance(event, ev.GatewayRetry):
            trial.retries += 1
        elif isinstance(event, ev.LoggedIn):
            trial.obtained_at = time.time()  # emitted right after the session was saved

    try:
        async with GatewayClient(url, transport=transport, budget=budget) as client:
            flow = LoginFlow(
                client=client, store=ConfigStore(trial.config), browser=UserBrowser(), device=device(), emit=emit
            )
            session = await flow.run("bench")
            trial.token = session.token
    except RgwError as exc:
        trial.error = f"{type(exc).__name__}: {exc}"[:120]
    finally:
        trial.done.set()


async def run_baseline(
    url: str, trial: Trial, transport: CountingTransport, budget: RequestBudget | None = None
) -> None:
    del budget  # the Go CLI has none
    try:
        result = await baseline_login(
            url,
            device=device(),
            config_path=trial.config / "config.json",
            on_auth_url=trial.saw_auth_url,
            transport=transport,
        )
        trial.token, trial.error, trial.obtained_at = result.token, result.error, result.obtained_at
    finally:
        trial.done.set()


Runner = Callable[[str, Trial, CountingTransport, RequestBudget | None], Any]
CLIENTS: dict[str, Runner] = {"rgw": run_ours, "go-cli": run_baseline}


def stratified(rng: random.Random, n: int, low: float, high: float) -> list[float]:
    """``n`` random moments in [low, high), one in each of n equal slices, in random order."""
    width = (high - low) / n
    moments = [low + (i + rng.random()) * width for i in range(n)]
    rng.shuffle(moments)
    return moments


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Row:
    link: str
    gateway: str
    client: str
    logins: int
    succeeded: int
    lost: int
    p50_ms: float | None
    p95_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    gateway_requests_per_login: float
    sent_requests_per_login: float
    retries_per_login: float | None
    wall_s: float
    proxy: dict[str, Any] | None
    errors: dict[str, int]
    #: The two parts of a login's latency: until the completing answer arrived, and the save after it.
    answer_p50_ms: float | None = None
    save_p50_ms: float | None = None

    @property
    def success(self) -> float:
        return self.succeeded / self.logins if self.logins else 0.0


async def run_batch(
    gw: RunningGateway, link: str, client: str, moments: list[float], workdir: Path, blackout_mode: BlackoutMode
) -> Row:
    runner = CLIENTS[client]
    faulty = link == "faulty"
    trials = [Trial(i, workdir / f"{link}-{gw.settings.extensions}-{client}-{i}") for i in range(len(moments))]
    # One transport (connection pool) per login, as in separate processes; each client closes its own.
    transports = [CountingTransport() for _ in trials]
    gw.gateway.reset_counts()
    started = time.monotonic()
    with FaultProxy(gw.url, FLAKY) if faulty else _NoProxy(gw.url) as proxy:
        with anyio.fail_after(RUN_TIMEOUT):
            if link == "single":
                # One login at a time, as a user runs it, with the CLI's shared request budget.
                for trial, transport, moment in zip(trials, transports, moments, strict=True):
                    budget = RequestBudget(proxy.url, trial.config.parent) if client == "rgw" else None
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(runner, proxy.url, trial, transport, budget)
                        await trial.waiting_or_done()
                        await anyio.sleep(moment)
                        if trial.state is not None and not trial.done.is_set():
                            gw.gateway.complete_browser_login(trial.state, EMAIL)
            else:
                async with anyio.create_task_group() as tg:
                    for trial, transport in zip(trials, transports, strict=True):
                        tg.start_soon(runner, proxy.url, trial, transport, None)
                    for trial in trials:
                        await trial.waiting_or_done()
                    origin = anyio.current_time()
                    if isinstance(proxy, FaultProxy):
                        proxy.blackout(BLACKOUT, mode=blackout_mode)

                    async def sign_in(trial: Trial, moment: float) -> None:
                        await anyio.sleep_until(origin + moment)
                        if trial.state is not None and not trial.done.is_set():
                            gw.gateway.complete_browser_login(trial.state, EMAIL)

                    for trial, moment in zip(trials, moments, strict=True):
                        tg.start_soon(sign_in, trial, moment)
        proxy_stats = asdict(proxy.stats.snapshot()) if isinstance(proxy, FaultProxy) else None
    wall = time.monotonic() - started

    latencies: list[float] = []
    answers: list[float] = []
    saves: list[float] = []
    errors: dict[str, int] = {}
    succeeded = lost = 0
    for trial, transport in zip(trials, transports, strict=True):
        completed_at = gw.gateway.login_completed_at(trial.state) if trial.state else None
        redeemed = trial.state is not None and completed_at is not None and gw.gateway.login.state(trial.state) is None
        ok = trial.token is not None and trial.obtained_at is not None and gw.gateway.session_valid(trial.token)
        if ok and completed_at is not None and trial.obtained_at is not None:
            succeeded += 1
            latencies.append((trial.obtained_at - completed_at) * 1000)
            if transport.completed_at is not None:
                answers.append((transport.completed_at - completed_at) * 1000)
                saves.append((trial.obtained_at - transport.completed_at) * 1000)
        else:
            key = trial.error or "no session"
            errors[key] = errors.get(key, 0) + 1
            lost += redeemed
    n = len(trials)

    def ms(value: float | None) -> float | None:
        return round(value, 1) if value is not None else None

    return Row(
        link=link,
        gateway="extensions" if gw.settings.extensions else "deployed",
        client=client,
        logins=n,
        succeeded=succeeded,
        lost=lost,
        p50_ms=ms(percentile(latencies, 0.5)),
        p95_ms=ms(percentile(latencies, 0.95)),
        mean_ms=ms(sum(latencies) / len(latencies)) if latencies else None,
        max_ms=ms(max(latencies)) if latencies else None,
        gateway_requests_per_login=round(gw.gateway.request_count(CLI_PATHS) / n, 2),
        sent_requests_per_login=round(sum(t.sent for t in transports) / n, 2),
        retries_per_login=round(sum(t.retries for t in trials) / n, 2) if client == "rgw" else None,
        wall_s=round(wall, 1),
        proxy=proxy_stats,
        errors=errors,
        answer_p50_ms=ms(percentile(answers, 0.5)),
        save_p50_ms=ms(percentile(saves, 0.5)),
    )


class _NoProxy:
    """The clean link: straight to the gateway."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> _NoProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


async def run_all(logins: int, seed: int, blackout_mode: BlackoutMode) -> list[Row]:
    rng = random.Random(seed)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rgw-bench-") as tmp:
        for link in ("single", "clean", "faulty"):
            for extensions in (False,) if link == "single" else (True, False):
                window = FAULTY_MOMENTS if link == "faulty" else CLEAN_MOMENTS
                moments = stratified(rng, logins, *window)
                # "single": the deployed gateway as it is, rate limit on.  The concurrent rows measure
                # latency on a link, not the rate limit (bench_ratelimit.py does): limit off there.
                settings = GatewaySettings(extensions=extensions, rate_limit=(10.0, 20) if link == "single" else None)
                with running_gateway(settings) as gw:
                    for client in CLIENTS:
                        row = await run_batch(gw, link, client, moments, Path(tmp), blackout_mode)
                        rows.append(row)
                        print(
                            f"  {link:6} {row.gateway:10} {client:7} {row.succeeded}/{row.logins} ok,"
                            f" p50 {fmt_ms(row.p50_ms)} ms, {row.wall_s} s",
                            file=sys.stderr,
                        )
    return rows


def fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| link | gateway | client | success | lost | p50 ms | p95 ms | mean ms | answer p50 ms | save p50 ms |"
        " req/login (gateway) | req/login (sent) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.link} | {r.gateway} | {r.client} | {r.succeeded}/{r.logins} ({r.success:.0%}) | {r.lost} |"
            f" {fmt_ms(r.p50_ms)} | {fmt_ms(r.p95_ms)} | {fmt_ms(r.mean_ms)} | {fmt_ms(r.answer_p50_ms)} |"
            f" {fmt_ms(r.save_p50_ms)} | {r.gateway_requests_per_login:.2f} | {r.sent_requests_per_login:.2f} |"
        )
    return "\n".join(lines)


def find(rows: list[Row], link: str, gateway: str, client: str) -> Row:
    return next(r for r in rows if (r.link, r.gateway, r.client) == (link, gateway, client))


def goals(rows: list[Row]) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for the goals of issue 3."""
    out: list[tuple[str, str, bool]] = []
    ours, base = find(rows, "clean", "extensions", "rgw"), find(rows, "clean", "extensions", "go-cli")
    if ours.p50_ms is not None:
        out.append(("p50 under 50 ms with extensions (clean link)", f"{fmt_ms(ours.p50_ms)} ms", ours.p50_ms < 50))
        if base.p50_ms is not None:
            ratio = base.p50_ms / ours.p50_ms if ours.p50_ms > 0 else math.inf
            out.append(("≥10x better p50 than the baseline with extensions (clean link)", f"{ratio:.0f}x", ratio >= 10))
    for link in ("single", "clean"):
        ours, base = find(rows, link, "deployed", "rgw"), find(rows, link, "deployed", "go-cli")
        if ours.p50_ms is not None and base.p50_ms is not None:
            out.append(
                (
                    f"p50 at or below the baseline's against the deployed gateway ({link})",
                    f"{fmt_ms(ours.p50_ms)} ms vs {fmt_ms(base.p50_ms)} ms",
                    ours.p50_ms <= base.p50_ms,
                )
            )
            out.append(
                (
                    f"no more requests per login than the baseline ({link}, deployed)",
                    f"{ours.gateway_requests_per_login:.2f} vs {base.gateway_requests_per_login:.2f}",
                    ours.gateway_requests_per_login <= base.gateway_requests_per_login,
                )
            )
    for gateway in ("extensions", "deployed"):
        ours, base = find(rows, "faulty", gateway, "rgw"), find(rows, "faulty", gateway, "go-cli")
        out.append(
            (
                f"100% success on the faulty link ({gateway}), where the baseline fails",
                f"{ours.success:.0%} vs baseline {base.success:.0%}",
                ours.success == 1.0 and base.success < 1.0,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--logins", type=int, default=20, help="logins per scenario and client (default 20)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the sign-in moments (default 3)")
    parser.add_argument("--blackout-mode", choices=("hang", "reset"), default="hang")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if args.logins < 1:
        parser.error("--logins must be at least 1")

    started = time.monotonic()
    rows = anyio.run(run_all, args.logins, args.seed, args.blackout_mode)
    elapsed = time.monotonic() - started
    met = goals(rows)

    print(
        f"## Login benchmark ({args.logins} concurrent logins per row; Python {platform.python_version()},"
        f" {os.cpu_count()} CPUs, {elapsed:.0f} s)\n"
    )
    print(table(rows))
    print(
        "\nFaulty link: resets on 30% of connections, 20% 503s, 200 ms ± 150 ms delay, "
        f"{BLACKOUT:g} s blackout ({args.blackout_mode}) during the wait.\n"
    )
    print("| goal | measured | met |\n|---|---|---|")
    for goal, measured, ok in met:
        print(f"| {goal} | {measured} | {'yes' if ok else 'NO'} |")
    failures = {f"{r.link}/{r.gateway}/{r.client}": r.errors for r in rows if r.errors}
    if failures:
        print("\nFailures:")
        for key, errors in failures.items():
            for error, count in sorted(errors.items(), key=lambda kv: -kv[1]):
                print(f"- {key}: {count} x {error}")
    if args.json:
        payload = {
            "logins": args.logins,
            "seed": args.seed,
            "blackout_mode": args.blackout_mode,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "elapsed_s": round(elapsed, 1),
            "rows": [{**asdict(r), "success": r.success} for r in rows],
            "goals": [{"goal": g, "measured": m, "met": ok} for g, m, ok in met],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
