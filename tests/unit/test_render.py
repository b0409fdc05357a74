"""Rendering login events: plain lines, JSON lines, and the live block on a terminal."""

from __future__ import annotations

import io
import json

from rgw.cli.render import JsonRenderer, LiveRenderer, TextRenderer
from rgw.login import events as ev

URL = "https://gw.example.com/oauth/authorize?state=abc"


def test_text_renderer_uses_the_seed_wording() -> None:
    out = io.StringIO()
    render = TextRenderer(out)
    for event in (
        ev.BrowserOpening("prod", URL),
        ev.Waiting("prod", "browser"),
        ev.GatewayRetry("prod", 2, 1.25, "gateway gw unreachable: connection reset"),
        ev.OAuthSucceeded("prod"),
        ev.MfaPrompt("prod", ("totp",)),
        ev.MfaVerified("prod"),
        ev.LoggedIn("prod", "developer@company.com"),
    ):
        render(event)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Opening browser for authentication..."
    assert lines[1] == f"If it does not open, visit: {URL}"
    assert lines[3] == (
        "Gateway unreachable (gateway gw unreachable: connection reset) - retrying (attempt 2, next in 1.2 s)"
    )
    assert lines[4:] == ["OAuth successful", "MFA verification required.", "MFA verified"]


def test_text_renderer_prefixes_racks_when_many() -> None:
    out = io.StringIO()
    TextRenderer(out, prefix_racks=True)(ev.BrowserUnavailable("b", URL, "--no-browser"))
    assert out.getvalue() == f"[b] Open this URL in your browser: {URL}\n"


def test_json_renderer_one_object_a_line() -> None:
    out = io.StringIO()
    render = JsonRenderer(out)
    render(ev.GatewayRetry("a", 1, 0.5, "boom"))
    render(ev.LoggedIn("a", "x@y.z"))
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "GatewayRetry"
    assert first["rack"] == "a"
    assert first["attempt"] == 1
    assert second == {"event": "LoggedIn", "rack": "a", "email": "x@y.z", "time": second["time"]}


def test_live_renderer_keeps_urls_and_redraws_one_line_per_rack() -> None:
    out = io.StringIO()
    now = [100.0]
    render = LiveRenderer(out, ["a", "b"], clock=lambda: now[0])
    render(ev.BrowserOpening("a", URL))
    render(ev.Waiting("a", "browser"))
    now[0] = 103.0
    render(ev.LoggedIn("b", "x@y.z"))
    render(ev.LoginFailed("a", "email domain not allowed"))
    render.close()
    text = out.getvalue()
    assert f"[a] If it does not open, visit: {URL}\n" in text
    *_, last_block, after_close = text.split("\x1b[J")
    # The failure scrolls above the block; a failed rack is marked ✗, never with the ✓ of a login.
    assert last_block.splitlines() == [
        "[a] Error: email domain not allowed",
        "✗ a: failed: email domain not allowed",
        "✓ b: logged in as x@y.z",
        "\x1b[2F",  # close() moves up to the block it drew ...
    ]
    assert after_close == ""  # ... and clears it


def test_live_renderer_pauses_while_a_code_is_typed() -> None:
    out = io.StringIO()
    render = LiveRenderer(out, ["a"])
    render(ev.MfaPrompt("a", ("totp",)))
    assert out.getvalue().endswith("MFA verification required.\n")  # nothing drawn under the prompt
    render(ev.GatewayRetry("a", 1, 0.1, "x"))
    assert out.getvalue().endswith("MFA verification required.\n")
    render(ev.MfaVerified("a"))
    assert "MFA verified\n" in out.getvalue()
