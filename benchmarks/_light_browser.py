"""A browser for benchmarks: signs in on the reference gateway's page using the standard library only.

    BROWSER="python benchmarks/_light_browser.py --email developer@example.com %s"

It does what the user's browser does (sign-in page, the form post, every redirect, the gateway's
OAuth callback among them) but starts in a few tens of milliseconds, so that a benchmark of many
``rack-gateway`` processes measures them and the gateway, not the start-up of a test browser.  A
real browser is usually running already: opening a tab costs nothing like a new Python process.
Exit status 0 when the browser ended on a 2xx page, 1 otherwise (a refused callback shows as 429).
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

_FORM = re.compile(r'<form method="post" action="/oauth/authorize">(.*?)</form>', re.S)
_STATE = re.compile(r'name="state" value="([^"]*)"')


def sign_in(url: str, email: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as page:
        html = page.read().decode()
    match = _FORM.search(html)
    state = _STATE.search(match.group(1)) if match else None
    if state is None:
        print("light browser: no sign-in form", file=sys.stderr)
        return 1
    base = urllib.parse.urljoin(url, "/oauth/authorize")
    body = urllib.parse.urlencode({"state": state.group(1), "action": "allow", "email": email}).encode()
    try:
        # urllib follows the 302 to the gateway's callback (and any redirect after it) as a browser does.
        with urllib.request.urlopen(base, data=body, timeout=30) as answer:
            return 0 if 200 <= answer.status < 300 else 1
    except urllib.error.HTTPError as exc:
        print(f"light browser: HTTP {exc.code} at {exc.url}", file=sys.stderr)
        return 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--email", default="developer@example.com")
    args = parser.parse_args()
    return sign_in(args.url, args.email)


if __name__ == "__main__":
    sys.exit(main())
