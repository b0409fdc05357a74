"""One browser tab for many racks: the one-tab walk against a tab per rack.

N racks spread over reference gateways on loopback, logged in by one ``rack-gateway login --all``
run in this process (asyncclick's runner) with the scripted browser standing in for the user:

- **walk**: the default, one browser launch on the listener's page, which hops from sign-in to sign-in;
- **tab per rack**: ``--no-loopback``, the way it was before (and the way ``gh``-style CLIs do it): one
  browser launch per rack, every login polling on its own;
- **walk, mixed**: half the racks on deployed-mode gateways (no extensions, rate limit on), signed
  in through the page's links.

Columns: browser launches, sign-ins the scripted user did, wall time from the command's start to its
exit (median of ``--repeat`` runs), and ``/api/v1/auth/cli/*`` requests per rack that reached the
gateways.  Prints a markdown table; ``--json FILE`` writes the figures.

    python benchmarks/bench_one_tab.py [--racks 10] [--gateways 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.testing import GatewaySettings, RunningGateway, ScriptedBrowser, running_gateway


class CountingBrowser:
    def __init__(self) -> None:
        self.inner = ScriptedBrowser(email="developer@example.com")
        self.launches = 0

    async def open(self, url: str) -> bool:
        self.launches += 1
        return await self.inner.open(url)


def cli_requests(gws: list[RunningGateway]) -> int:
    return sum(
        gw.gateway.request_count(path)
        for gw in gws
        for path in ("/api/v1/auth/cli/start", "/api/v1/auth/cli/complete", "/api/v1/auth/cli/mfa")
    )


def one_run(gws: list[RunningGateway], racks: int, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "cfg"
        config.mkdir(mode=0o700)
        gateways = {f"r{i:02d}": {"url": gws[i % len(gws)].url} for i in range(racks)}
        (config / "config.json").write_text(json.dumps({"gateways": gateways}))
        (config / "config.json").chmod(0o600)
        for gw in gws:
            gw.gateway.reset_counts()
        browser = CountingBrowser()
        app = App(
            options=Options(config_dir=config),
            environ={},
            out=io.StringIO(),
            err=io.StringIO(),
            browser=browser,
            interactive=False,
        )
        started = time.perf_counter()
        code = anyio.run(functools.partial(run, ["login", "--all", "--timeout", "120", *extra], obj=app))
        elapsed = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"login --all {' '.join(extra)} failed with exit code {code}")
        saved = json.loads((config / "config.json").read_text())["gateways"]
        assert all(entry.get("token") for entry in saved.values())
        return {
            "launches": browser.launches,
            "sign_ins": browser.inner.sign_ins,
            "seconds": elapsed,
            "requests_per_rack": cli_requests(gws) / racks,
        }


def row(name: str, runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "mode": name,
        "launches": runs[0]["launches"],
        "sign_ins": runs[0]["sign_ins"],
        "seconds_median": statistics.median(r["seconds"] for r in runs),
        "seconds_all": [round(r["seconds"], 3) for r in runs],
        "requests_per_rack": statistics.median(r["requests_per_rack"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--racks", type=int, default=10)
    parser.add_argument("--gateways", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with ExitStack() as stack:
        ext = [stack.enter_context(running_gateway(GatewaySettings())) for _ in range(args.gateways)]
        half = max(1, args.gateways // 2)
        deployed = [stack.enter_context(running_gateway(GatewaySettings(extensions=False))) for _ in range(half)]
        mixed = [gw for pair in zip(ext[:half], deployed, strict=True) for gw in pair]
        for name, gws, extra in (
            ("walk (one tab)", ext, []),
            ("tab per rack (--no-loopback)", ext, ["--no-loopback"]),
            ("walk, half deployed", mixed, []),
        ):
            rows.append(row(name, [one_run(gws, args.racks, extra) for _ in range(args.repeat)]))
    print(f"{args.racks} racks over {args.gateways} reference gateways, median of {args.repeat} runs\n")
    print("| mode | browser launches | sign-ins | wall s | cli requests / rack |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['launches']} | {r['sign_ins']} | {r['seconds_median']:.2f} | "
            f"{r['requests_per_rack']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"racks": args.racks, "gateways": args.gateways, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
