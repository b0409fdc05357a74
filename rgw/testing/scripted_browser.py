"""``python -m rgw.testing.scripted_browser URL``: the scripted browser as a command.

Set ``BROWSER="python -m rgw.testing.scripted_browser --email developer@example.com %s"`` and a real
``rack-gateway login`` subprocess signs in through the reference gateway with no browser installed.
``--stop-at-mfa`` leaves it on the gateway's MFA page (no code posted, even with ``--totp-secret``);
``--at-mfa-file PATH`` writes the MFA page's URL to PATH (complete, by a rename) once that page has
loaded, so a test driving the CLI in a pty types the code only after the browser is there.
"""

from __future__ import annotations

import argparse
import os
import sys

import anyio

from rgw.testing.browser import ScriptedBrowser


def _mark(path: str, url: str) -> None:
    """Write `url` to `path` whole: a reader sees no file or the complete URL."""
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(url + "\n")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rgw.testing.scripted_browser")
    parser.add_argument("url")
    parser.add_argument("--email", default="developer@example.com")
    parser.add_argument("--action", choices=["allow", "cancel"], default="allow")
    parser.add_argument("--totp-secret", default=None)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--stop-at-mfa", action="store_true")
    parser.add_argument("--at-mfa-file", default=None)
    args = parser.parse_args(argv)
    browser = ScriptedBrowser(
        email=args.email,
        action=args.action,
        totp_secret=args.totp_secret,
        delay=args.delay,
        stop_at_mfa=args.stop_at_mfa,
        on_mfa_page=(lambda url: _mark(args.at_mfa_file, url)) if args.at_mfa_file else None,
    )
    try:
        anyio.run(browser.open, args.url)
    except KeyboardInterrupt:
        return 130  # Ctrl-C in the terminal it shares with the CLI: it stops too, quietly
    except Exception as exc:
        print(f"scripted browser: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
