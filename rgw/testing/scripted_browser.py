"""``python -m rgw.testing.scripted_browser URL``: the scripted browser as a command.

Set ``BROWSER="python -m rgw.testing.scripted_browser --email developer@example.com %s"`` and a real
``rack-gateway login`` subprocess signs in through the reference gateway with no browser installed.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from rgw.testing.browser import ScriptedBrowser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rgw.testing.scripted_browser")
    parser.add_argument("url")
    parser.add_argument("--email", default="developer@example.com")
    parser.add_argument("--action", choices=["allow", "cancel"], default="allow")
    parser.add_argument("--totp-secret", default=None)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    browser = ScriptedBrowser(email=args.email, action=args.action, totp_secret=args.totp_secret, delay=args.delay)
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
