"""Parallel logins: N racks in one ``rack-gateway login`` command, and N processes at once.

Every rack points at one reference gateway on loopback.  The one-command runs use the CLI in a
child process with the scripted browser in-process (``benchmarks/_cli_driver.py``); the N-process run
starts N ``python -m rgw login`` processes, each opening the scripted browser as its ``$BROWSER``
command, as a real browser would be a process of its own.  Peak memory is each child's max RSS
(``os.wait4``).  Prints a markdown table; ``--json FILE`` writes the figures.

    python benchmarks/bench_parallel.py [--sizes 1,10,50] [--processes 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rgw.testing import GatewaySettings, running_gateway

HERE = Path(__file__).resolve().parent


def seed(config: Path, url: str, count: int) -> None:
    config.mkdir(parents=True, mode=0o700)
    gateways = {f"r{i:02d}": {"url": url} for i in range(count)}
    (config / "config.json").write_text(json.dumps({"current": "r00", "gateways": gateways}))
    os.chmod(config / "config.json", 0o600)


def wait(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """(exit code, max RSS in MiB) of a child."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def one_command(url: str, count: int, parallel: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "cfg"
        seed(config, url, count)
        args = ["login", "--all", "--parallel", str(parallel)] if count > 1 else ["login", "r00"]
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "_cli_driver.py"), str(config), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        code, rss = wait(proc)
        elapsed = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"login of {count} racks failed with exit code {code}")
        data = json.loads((config / "config.json").read_text())
        assert all(entry.get("token") for entry in data["gateways"].values())
        return elapsed, rss


def many_processes(url: str, count: int) -> tuple[float, float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_", "DISPLAY"))}
    env["BROWSER"] = f"{sys.executable} -m rgw.testing.scripted_browser %s"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "cfg"
        seed(config, url, count)
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "rgw", "--config", str(config), "login", f"r{i:02d}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            for i in range(count)
        ]
        results = [wait(p) for p in procs]
        elapsed = time.perf_counter() - started
        if any(code != 0 for code, _ in results):
            raise SystemExit(f"{sum(code != 0 for code, _ in results)} of {count} process logins failed")
        data = json.loads((config / "config.json").read_text())
        assert all(entry.get("token") for entry in data["gateways"].values())
        rss = [r for _, r in results]
        return elapsed, max(rss), sum(rss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--processes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict[str, object]] = []
    with running_gateway(GatewaySettings()) as gw:
        for count in sizes:
            for parallel in sorted({8, count}) if count > 1 else [1]:
                runs = [one_command(gw.url, count, parallel) for _ in range(args.repeat)]
                rows.append(
                    {
                        "scenario": f"{count} rack(s), one command, --parallel {parallel}",
                        "wall_s": statistics.median(r[0] for r in runs),
                        "peak_rss_mib": max(r[1] for r in runs),
                    }
                )
        elapsed, peak, total = many_processes(gw.url, args.processes)
        rows.append(
            {
                "scenario": f"{args.processes} racks, {args.processes} processes",
                "wall_s": elapsed,
                "peak_rss_mib": peak,
                "total_rss_mib": total,
            }
        )
    base = rows[0]["wall_s"]
    print("| scenario | wall time (s, median) | x one login | peak RSS per process (MiB) |")
    print("|---|---|---|---|")
    for row in rows:
        wall = float(row["wall_s"])  # type: ignore[arg-type]
        print(f"| {row['scenario']} | {wall:.2f} | {wall / float(base):.2f} | {float(row['peak_rss_mib']):.0f} |")  # type: ignore[arg-type]
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
