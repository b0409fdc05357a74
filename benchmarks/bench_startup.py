"""Cold start of the CLI, as a ratio to ``python -c "import asyncclick"``.

    python benchmarks/bench_startup.py [--runs N] [--json out.json]

Each command runs as a fresh subprocess (``sys.executable -m rgw ...``), round-robin, after one
untimed warm-up run each (so bytecode caches exist, as after an install); the table shows the median
and the fastest of ``--runs`` wall times and the median as a ratio to importing asyncclick, the floor
any asyncclick CLI pays.  ``racks`` reads a small config (two racks); ``test-auth`` asks a reference
gateway this script serves on loopback, with a session stored in that config.

Then ``python -X importtime -m rgw --help`` is read once: the packages ``--help`` imports beyond
``import asyncclick`` are listed with their cumulative import time, and heavy ones that a help text
does not need (httpx, tenacity, ...) are named.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from rgw.testing import GatewaySettings, running_gateway

#: Packages a ``--help`` should not need: the HTTP stack, retries, file I/O helpers, test support.
HEAVY = (
    "httpx",
    "httpcore",
    "h11",
    "certifi",
    "idna",
    "tenacity",
    "aiofiles",
    "filelock",
    "fido2",
    "cryptography",
    "starlette",
    "uvicorn",
    "pyotp",
    "webauthn",
    "webbrowser",
)
EMAIL = "developer@example.com"


@dataclass
class Timing:
    name: str
    argv: list[str]
    runs_ms: list[float]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (default 15)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="rgw-startup-") as tmp, running_gateway(GatewaySettings()) as gw:
        user = gw.gateway.user(EMAIL)
        assert user is not None
        token, _ = gw.gateway.sessions.issue(
            user, device_id=str(uuid.uuid4()), device_name="bench-host", device_os="linux/x86_64", mfa_verified_at=None
        )
        config_dir = Path(tmp) / "config"
        write_config(config_dir, gw.url, token)
        env = clean_env(config_dir)
        commands = [
            Timing('python -c "import asyncclick"', [python, "-c", "import asyncclick"], []),
            Timing("rack-gateway --help", [python, "-m", "rgw", "--help"], []),
            Timing("rack-gateway racks", [python, "-m", "rgw", "racks"], []),
            Timing("rack-gateway test-auth", [python, "-m", "rgw", "test-auth"], []),
        ]
        for command in commands:
            run_once(command.argv, env)  # warm-up: bytecode caches, and a check that it works
        for _ in range(args.runs):
            for command in commands:
                command.runs_ms.append(run_once(command.argv, env))
        help_imports = import_times([python, "-m", "rgw", "--help"], env)
        floor_imports = import_times([python, "-c", "import asyncclick"], env)

    floor = commands[0].median_ms
    print(f"## Cold start (median of {args.runs} runs; Python {platform.python_version()}, {os.cpu_count()} CPUs)\n")
    print("| command | median ms | min ms | ratio to import asyncclick |")
    print("|---|---|---|---|")
    for command in commands:
        ratio = command.median_ms / floor
        print(f"| `{command.name}` | {command.median_ms:.0f} | {command.min_ms:.0f} | {ratio:.2f} |")

    extra = {name: us for name, us in help_imports.items() if name not in floor_imports}
    heavy = sorted(name for name in extra if name in HEAVY)
    print("\n`--help` imports beyond `import asyncclick` (own modules' import time, one run):\n")
    for name, us in sorted(extra.items(), key=lambda kv: -kv[1])[:12]:
        print(f"- `{name}`: {us / 1000:.1f} ms")
    print(f"\nHeavy modules imported by `--help`: {', '.join(heavy) if heavy else 'none'}")

    if args.json:
        payload = {
            "runs": args.runs,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "commands": [{**asdict(c), "median_ms": c.median_ms, "ratio": c.median_ms / floor} for c in commands],
            "help_extra_imports_us": extra,
            "help_heavy_imports": heavy,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
