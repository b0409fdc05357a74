"""Cold start of the CLI against two floors: ``import asyncclick`` and ``import asyncclick, httpx``.

    python benchmarks/bench_startup.py [--runs N] [--python PATH] [--json out.json]

Each command runs as a fresh process (the ``rack-gateway`` console script next to ``--python``, else
``python -m rgw``), round-robin, after one untimed warm-up run each (bytecode caches exist, as after
an install).  Local commands (``--version``, ``--help``, ``racks``, ``status --offline``,
``completion bash``, ``token``) are compared with ``python -c "import asyncclick"``, the floor any
asyncclick CLI pays; the goal is 1.5 times it.  Commands that ask a gateway (``test-auth``,
``status``) ask a reference gateway this script serves on loopback (plain HTTP, a session stored in
a two-rack config) and are compared with ``python -c "import asyncclick, httpx"``; the goal is 1.5
times that plus one round trip (measured here: a fresh connection and ``GET /api/v1/info``).

A third floor is printed for information: importing every dependency ``test-auth`` needs (httpcore,
h11, tenacity, aiofiles, anyio) and starting an empty ``anyio.run``; the second floor has none of
them (httpx imports httpcore on first use), so it shows how much of ``test-auth`` is rgw's own.

``--python`` times another interpreter, e.g. a fresh virtualenv with only ``pip install .`` in it
(the dev environment has trio installed, and httpcore imports trio whenever it can, which inflates
every HTTP command and the second floor alike).

Then ``-X importtime`` is read once for ``--version`` and ``test-auth``: the packages each imports
beyond its floor, with their own import time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from rgw.testing import GatewaySettings, running_gateway

EMAIL = "developer@example.com"
GOAL = 1.5


@dataclass
class Timing:
    name: str
    argv: list[str]
    #: "floor", "local" (goal: 1.5 x the asyncclick floor) or "gateway" (1.5 x the httpx floor + a round trip).
    kind: str
    runs_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def min_ms(self) -> float:
        return min(self.runs_ms)


def run_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout.decode()}{done.stderr.decode()}")
    return elapsed


def write_config(directory: Path, url: str, token: str) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = {
        "current": "dev",
        "machine_id": str(uuid.uuid4()),
        "gateways": {
            "dev": {
                "url": url,
                "token": token,
                "email": EMAIL,
                "expires_at": "2099-01-01T00:00:00Z",
                "session_id": 1,
                "channel": "cli",
                "device_name": "bench-host",
                "mfa_verified": False,
            },
            "staging": {"url": "https://staging.example.com"},
        },
    }
    path = directory / "config.json"
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def clean_env(config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RACK_GATEWAY_", "GATEWAY_CLI_", "PYTHON"))}
    env["GATEWAY_CLI_CONFIG_DIR"] = str(config_dir)
    env["NO_COLOR"] = "1"
    return env


def import_times(argv: list[str], env: dict[str, str]) -> dict[str, int]:
    """Top-level package -> time spent importing its own modules (sum of self times, µs), from ``-X importtime``."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True
    )
    packages: dict[str, int] = {}
    for line in done.stderr.decode().splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line, or something else on stderr
        top = fields[2].strip().split(".")[0]
        packages[top] = packages.get(top, 0) + int(fields[0])
    return packages


def round_trip_ms(url: str, runs: int) -> float:
    """Median of a new TCP connection plus ``GET /api/v1/info`` (401 without a token: a round trip all the same)."""
    parts = urlsplit(url)
    times = []
    for _ in range(max(5, runs)):
        started = time.perf_counter()
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        try:
            connection.request("GET", "/api/v1/info")
            connection.getresponse().read()
        finally:
            connection.close()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def auth_ratio(commands: list[Timing], deps: Timing) -> float:
    auth = next(c for c in commands if c.name == "rack-gateway test-auth")
    return auth.median_ms / deps.median_ms


def cli_argv(python: str) -> list[str]:
    script = Path(python).parent / "rack-gateway"
    return [str(script)] if script.exists() else [python, "-m", "rgw"]


def extra_imports(python: str, argv: list[str], floor: list[str], env: dict[str, str]) -> list[tuple[str, int]]:
    own = import_times([python, *argv[1:]] if argv[0] == python else [python, argv[0], *argv[1:]], env)
    base = import_times([python, *floor], env)
    return sorted(((name, us) for name, us in own.items() if name not in base), key=lambda kv: -kv[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (default 15)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to time (default: this one)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    python = args.python
    rgw = cli_argv(python)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rgw-startup-") as tmp, running_gateway(GatewaySettings()) as gw:
        user = gw.gateway.user(EMAIL)
        assert user is not None
        token, _ = gw.gateway.sessions.issue(
            user, device_id=str(uuid.uuid4()), device_name="bench-host", device_os="linux/x86_64", mfa_verified_at=None
        )
        config_dir = Path(tmp) / "config"
        write_config(config_dir, gw.url, token)
        env = clean_env(config_dir)
        floor1 = Timing('python -c "import asyncclick"', [python, "-c", "import asyncclick"], "floor")
        floor2 = Timing('python -c "import asyncclick, httpx"', [python, "-c", "import asyncclick, httpx"], "floor")
        deps = Timing(
            "deps of a gateway command (see below)",
            [python, "-c", "import asyncclick, httpx, httpcore, tenacity, aiofiles, anyio; anyio.run(anyio.sleep, 0)"],
            "floor",
        )
        commands = [
            floor1,
            floor2,
            deps,
            Timing("rack-gateway --version", [*rgw, "--version"], "local"),
            Timing("rack-gateway --help", [*rgw, "--help"], "local"),
            Timing("rack-gateway racks", [*rgw, "racks"], "local"),
            Timing("rack-gateway status --offline", [*rgw, "status", "--offline"], "local"),
            Timing("rack-gateway token", [*rgw, "token"], "local"),
            Timing("rack-gateway completion bash", [*rgw, "completion", "bash"], "local"),
            Timing("rack-gateway test-auth", [*rgw, "test-auth"], "gateway"),
            Timing("rack-gateway status", [*rgw, "status"], "gateway"),
        ]
        for command in commands:
            run_once(command.argv, env)  # warm-up: bytecode caches, and a check that it works
        for _ in range(args.runs):
            for command in commands:
                command.runs_ms.append(run_once(command.argv, env))
        rtt = round_trip_ms(gw.url, args.runs)
        version_extra = extra_imports(python, [*rgw, "--version"], ["-c", "import asyncclick"], env)
        auth_extra = extra_imports(python, [*rgw, "test-auth"], ["-c", "import asyncclick, httpx"], env)
    load_after = os.getloadavg()

    print(
        f"## Cold start (median of {args.runs} runs; Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} before, {load_after[0]:.2f} after)\n"
    )
    print(
        f"Floors: `import asyncclick` {floor1.median_ms:.0f} ms; `import asyncclick, httpx` {floor2.median_ms:.0f} ms;"
    )
    print(f"one loopback round trip (new connection + GET /api/v1/info): {rtt:.1f} ms.\n")
    print("| command | median ms | min ms | ratio to its floor | goal (ms) | met |")
    print("|---|---|---|---|---|---|")
    results = []
    for command in commands:
        if command.kind == "floor":
            ratio, goal = 1.0, None
        elif command.kind == "local":
            ratio, goal = command.median_ms / floor1.median_ms, GOAL * floor1.median_ms
        else:
            ratio, goal = command.median_ms / floor2.median_ms, GOAL * floor2.median_ms + rtt
        met = "" if goal is None else ("yes" if command.median_ms <= goal else "no")
        goal_text = "" if goal is None else f"{goal:.0f}"
        print(
            f"| `{command.name}` | {command.median_ms:.0f} | {command.min_ms:.0f} | {ratio:.2f} | {goal_text} | {met} |"
        )
        results.append({**asdict(command), "median_ms": command.median_ms, "ratio": ratio, "goal_ms": goal})

    print(
        "\n`deps of a gateway command`: `import asyncclick, httpx, httpcore, tenacity, aiofiles, anyio` and an"
        " empty `anyio.run`, i.e. what `test-auth` must load and start before any code of ours runs;"
        f" `test-auth` is {auth_ratio(commands, deps):.2f} times it."
    )
    for title, extra in (("`--version`", version_extra), ("`test-auth`", auth_extra)):
        print(f"\n{title} imports beyond its floor (own modules' import time, one run):\n")
        for name, us in extra[:10]:
            print(f"- `{name}`: {us / 1000:.1f} ms")

    if args.json:
        payload = {
            "runs": args.runs,
            "python": platform.python_version(),
            "interpreter": python,
            "cpus": os.cpu_count(),
            "load_average": [load[0], load_after[0]],
            "round_trip_ms": rtt,
            "commands": results,
            "version_extra_imports_us": dict(version_extra),
            "test_auth_extra_imports_us": dict(auth_extra),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
