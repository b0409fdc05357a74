"""Many logins against one rate-limited gateway: does every login finish, and is the browser starved?

    python benchmarks/bench_ratelimit.py [--sizes 20,50] [--json out.json]

The reference gateway runs in deployed mode (no extensions) with the deployed server's rate limit
on: 10 requests/s, burst 20, per client IP, on ``/api/v1/auth/*`` including the browser's OAuth
callback.  Everything runs on loopback, so the browser and every ``rack-gateway`` process share one
client IP, as on a developer's machine or behind a CI job's NAT.  For each N two shapes run:

- **N processes**: N ``rack-gateway login rNN`` processes started together, one rack each, one
  config directory; each opens ``$BROWSER`` (``_light_browser.py``: the sign-in page, the form, the
  callback), as a real browser would be a process of its own.
- **one command**: ``rack-gateway login --rack r00 ... --rack rNN`` (default ``--parallel``, and
  ``--parallel N``).

Columns: logins that ended with a valid session; browser callbacks the gateway refused with 429
(must be 0: a refused callback is a login that can never complete); 429s the CLI received; requests
per login that reached ``/api/v1/auth/*`` (browser callback included); p50/p95 of each login's
completion time and the wall time of the whole batch, from the common start; and the lower bound
the rate limit itself sets: every login needs at least 4 limited requests (start; the browser's
callback and the sign-in step it is redirected to; one completion), so N logins need ``4N / 10``
seconds of the gateway's budget.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rgw.testing import GatewaySettings, RunningGateway, running_gateway

HERE = Path(__file__).resolve().parent
RATE, BURST = 10.0, 20
#: Limited requests a login cannot do without: /start, the browser's callback and the sign-in step
#: the deployed server redirects it to (GET /auth/cli/mfa), one /complete.
NEEDED_PER_LOGIN = 4
TIMEOUT = 300.0
Runner = Callable[[Path, list[str]], tuple[list[float], float]]


@dataclass
class Row:
    shape: str
    logins: int
    succeeded: int
    callbacks_refused: int
    cli_429s: int
    requests_per_login: float
    p50_s: float | None
    p95_s: float | None
    wall_s: float
    bound_s: float

    @property
    def ratio(self) -> float:
        return self.wall_s / self.bound_s if self.bound_s > 0 else math.inf


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bound(n: int) -> float:
    """Seconds the rate limit itself needs for ``n`` logins: the requests they need at 10 per second."""
    return NEEDED_PER_LOGIN * n / RATE


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_", "DISPLAY"))}
    env["BROWSER"] = f"{sys.executable} {HERE / '_light_browser.py'} %s"
    return env


def seed(config: Path, url: str, n: int) -> list[str]:
    config.mkdir(parents=True, mode=0o700)
    racks = [f"r{i:02d}" for i in range(n)]
    (config / "config.json").write_text(json.dumps({"gateways": {r: {"url": url} for r in racks}}))
    os.chmod(config / "config.json", 0o600)
    return racks


def valid_sessions(gw: RunningGateway, config: Path, racks: list[str]) -> int:
    data = json.loads((config / "config.json").read_text())
    tokens = [data["gateways"].get(r, {}).get("token") for r in racks]
    return sum(1 for t in tokens if t and gw.gateway.session_valid(t))


def measure(gw: RunningGateway, shape: str, n: int, run: Runner) -> Row:
    with tempfile.TemporaryDirectory(prefix="rgw-ratelimit-") as tmp:
        config = Path(tmp) / "cfg"
        racks = seed(config, gw.url, n)
        gw.gateway.reset_counts()
        times, wall = run(config, racks)
        succeeded = valid_sessions(gw, config, racks)
    refused = gw.gateway.browser_refusals()
    return Row(
        shape=shape,
        logins=n,
        succeeded=succeeded,
        callbacks_refused=refused,
        cli_429s=gw.gateway.rate_limited_count("/api/v1/auth/") - refused,
        requests_per_login=round(gw.gateway.request_count("/api/v1/auth/") / n, 2),
        p50_s=round(p, 2) if (p := percentile(times, 0.5)) is not None else None,
        p95_s=round(p, 2) if (p := percentile(times, 0.95)) is not None else None,
        wall_s=round(wall, 2),
        bound_s=round(bound(n), 2),
    )


def processes(config: Path, racks: list[str]) -> tuple[list[float], float]:
    env = environment()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rgw", "--config", str(config), "login", rack],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        for rack in racks
    ]
    ended: dict[int, float] = {}
    deadline = started + TIMEOUT
    while len(ended) < len(procs) and time.perf_counter() < deadline:
        for index, proc in enumerate(procs):
            if index not in ended and proc.poll() is not None:
                ended[index] = time.perf_counter() - started
        time.sleep(0.01)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        if proc.returncode != 0:
            print(f"  login failed (exit {proc.returncode}): {err.decode()[-300:]}", file=sys.stderr)
    times = [ended[i] for i, p in enumerate(procs) if i in ended and p.returncode == 0]
    return times, time.perf_counter() - started


def one_command(parallel: int | None) -> Runner:
    def run(config: Path, racks: list[str]) -> tuple[list[float], float]:
        args = [sys.executable, "-m", "rgw", "--config", str(config), "login", "--progress", "json"]
        for rack in racks:
            args += ["--rack", rack]
        if parallel is not None:
            args += ["--parallel", str(parallel)]
        started_wall = time.time()
        started = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, env=environment(), timeout=TIMEOUT, check=False)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            print(f"  one command failed (exit {proc.returncode}): {proc.stderr.decode()[-500:]}", file=sys.stderr)
        times = []
        for line in proc.stderr.decode().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "LoggedIn":
                times.append(event["time"] - started_wall)
        return times, wall

    return run


def table(rows: list[Row]) -> str:
    lines = [
        "| shape | logins | ok | callbacks refused | 429s to the CLI | req/login | p50 s | p95 s | wall s |"
        " bound s | wall / bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.shape} | {r.logins} | {r.succeeded}/{r.logins} | {r.callbacks_refused} | {r.cli_429s} |"
            f" {r.requests_per_login:.2f} | {r.p50_s} | {r.p95_s} | {r.wall_s} | {r.bound_s} | {r.ratio:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="20,50", help="comma-separated N (default 20,50)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows: list[Row] = []
    started = time.monotonic()
    settings = GatewaySettings(extensions=False)  # the deployed limit is on by default
    assert settings.rate_limit == (RATE, BURST)
    for n in sizes:
        shapes = [
            (f"{n} processes", processes),
            ("one command (--parallel default)", one_command(None)),
            (f"one command (--parallel {n})", one_command(n)),
        ]
        for shape, run in shapes:
            with running_gateway(settings) as gw:
                row = measure(gw, shape, n, run)
            rows.append(row)
            print(
                f"  {shape}: {row.succeeded}/{n} ok, wall {row.wall_s} s, refused {row.callbacks_refused}",
                file=sys.stderr,
            )
    elapsed = time.monotonic() - started
    print(
        f"## Logins against a rate-limited deployed gateway ({RATE:g}/s, burst {BURST}; Python"
        f" {platform.python_version()}, {os.cpu_count()} CPUs, {elapsed:.0f} s)\n"
    )
    print(table(rows))
    print("\n| goal | measured | met |\n|---|---|---|")
    for r in rows:
        ok = r.succeeded == r.logins and r.callbacks_refused == 0
        print(
            f"| {r.shape}: every login succeeds, no callback refused | {r.succeeded}/{r.logins},"
            f" {r.callbacks_refused} refused | {'yes' if ok else 'NO'} |"
        )
        print(
            f"| {r.shape}: wall time within 2x of the rate limit's bound | {r.ratio:.2f}x |"
            f" {'yes' if r.ratio <= 2 else 'NO'} |"
        )
    if args.json:
        payload = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "elapsed_s": round(elapsed, 1),
            "rows": [{**asdict(r), "ratio": r.ratio} for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
