"""Rendering login events: plain lines, JSON lines, and the live block on a terminal."""

from __future__ import annotations

import io
import json
import re

from rgw.cli.live import LiveRenderer
from rgw.cli.render import JsonRenderer, TextRenderer, describe
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
    # The failure is said once, in its line (the command's table follows); a failed rack is marked
    # ✗, never with the ✓ of a login.
    assert last_block.splitlines() == [
        "2 of 2 racks finished, 1 failed.",
        "✗ failed      a  email domain not allowed",
        "✓ logged in   b  x@y.z",
        "\x1b[3F",  # close() moves up to the block it drew ...
    ]
    assert text.count("email domain not allowed") == 1
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


# -- terminal manners: the URL once, no cursor movement off a live terminal, 80 columns, colour ----


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


LOGIN_EVENTS = (
    ev.BrowserOpening("prod", URL),
    ev.Waiting("prod", "browser"),
    ev.BrowserUnavailable("prod", URL, "no browser could be opened", url_shown=True),
    ev.GatewayRetry("prod", 1, 0.5, "connection reset"),
    ev.OAuthSucceeded("prod"),
    ev.LoggedIn("prod", "developer@company.com"),
)


def renderer_for(environ: dict[str, str], stream: io.StringIO, racks: list[str]) -> object:
    from rgw.cli.app import App
    from rgw.cli.auth import make_renderer

    return make_renderer(App(environ=environ, err=stream), "text", racks)


def test_the_sign_in_url_is_printed_once_even_when_the_browser_fails_after() -> None:
    for stream, environ in ((io.StringIO(), {}), (Terminal(), {"TERM": "xterm-256color"})):
        render = renderer_for(environ, stream, ["prod"])
        for event in LOGIN_EVENTS:
            render(event)  # type: ignore[operator]
        assert stream.getvalue().count(URL) == 1, type(render).__name__
        assert "The browser could not be opened: open the URL above yourself." in stream.getvalue()


def test_term_dumb_and_non_terminals_get_plain_lines_without_escape_sequences() -> None:
    for stream, environ in ((Terminal(), {"TERM": "dumb"}), (io.StringIO(), {"TERM": "xterm"})):
        render = renderer_for(environ, stream, ["prod", "stg"])
        assert isinstance(render, TextRenderer)
        for event in LOGIN_EVENTS:
            render(event)
        assert "\x1b" not in stream.getvalue()
        assert stream.getvalue().splitlines()[0] == "[prod] Opening browser for authentication..."


def test_a_live_terminal_gets_the_live_block_in_colour_unless_no_color() -> None:
    coloured, plain = Terminal(), Terminal()
    for stream, environ in ((coloured, {"TERM": "xterm"}), (plain, {"TERM": "xterm", "NO_COLOR": "1"})):
        render = renderer_for(environ, stream, ["prod", "stg"])
        assert isinstance(render, LiveRenderer)
        render(ev.LoggedIn("prod", "a@b.c"))
        render(ev.LoginFailed("stg", "nope"))
        render.close()
    assert "\x1b[32m✓\x1b[0m logged in   prod  a@b.c" in coloured.getvalue()
    assert "\x1b[31m✗\x1b[0m failed      stg   nope" in coloured.getvalue()
    assert "✓ logged in   prod  a@b.c" in plain.getvalue()
    assert "\x1b[31m" not in plain.getvalue()  # cursor movement, but no colour
    assert "\x1b[32m" not in plain.getvalue()
    assert "\x1b[0m" not in plain.getvalue()


def test_every_line_of_the_live_block_fits_80_columns() -> None:
    from rgw.cli.style import width

    out = io.StringIO()
    racks = ["production-eu-west-1-with-a-very-long-name", "ステージング環境の長いラック名前です", "dev"]
    render = LiveRenderer(out, racks, clock=lambda: 100.0, columns=lambda: 80, color=True)
    long = "x" * 200
    render(ev.GatewayRetry(racks[0], 12, 3.5, "gateway unreachable: " + long))
    render(ev.Waiting(racks[1], "browser"))
    render(ev.LoginFailed(racks[2], "email domain not allowed: " + "ü" * 100))
    block = out.getvalue().split("\x1b[J")[-1]
    summary, *lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in block.splitlines()]
    assert summary == "1 of 3 racks finished, 1 failed."
    assert len(lines) == 3
    assert all(width(line) <= 80 for line in lines), [width(line) for line in lines]
    assert lines[0].endswith("…")  # cut by columns, wide characters counted twice
    assert lines[2].endswith("…")
    # State first, then the name (cut at 24 columns), then the detail.
    assert lines[0].startswith("⠋ retrying    production-eu-west-1-wi…    0 s  gateway unreachable: xxx")
    assert lines[1] == "⠋ waiting     ステージング環境の長い…     0 s"  # wide characters count twice
    assert lines[2].startswith("✗ failed      dev                       email domain not allowed: üü")


def test_errors_are_red_only_on_a_terminal_that_takes_colour() -> None:
    from rgw.cli import report
    from rgw.errors import NotLoggedIn

    error = NotLoggedIn("not logged in to prod", hint="Please run: rack-gateway login prod https://gw")
    cases = [
        (Terminal(), {"TERM": "xterm"}, "\x1b[1;31mError:\x1b[0m not logged in to prod\n"),
        (Terminal(), {"TERM": "xterm", "NO_COLOR": ""}, "Error: not logged in to prod\n"),
        (Terminal(), {"TERM": "dumb"}, "Error: not logged in to prod\n"),
        (io.StringIO(), {"TERM": "xterm"}, "Error: not logged in to prod\n"),
    ]
    for stream, environ, first in cases:
        report(error, stream, environ)
        assert stream.getvalue() == first + "Please run: rack-gateway login prod https://gw\n", environ


def test_result_tables_are_coloured_only_when_asked() -> None:
    from rgw.cli.style import GREEN, RED, table

    rows = [("a", "logged in"), ("b", "failed")]
    colors = [(None, GREEN), (None, RED)]
    assert table(rows, ("RACK", "RESULT"), colors=colors, color=False) == [
        "RACK  RESULT",
        "a     logged in",
        "b     failed",
    ]
    assert table(rows, ("RACK", "RESULT"), colors=colors, color=True) == [
        "RACK  RESULT",
        "a     \x1b[32mlogged in\x1b[0m",
        "b     \x1b[31mfailed\x1b[0m",
    ]


def test_the_live_block_keeps_the_qr_code_above_it_once() -> None:
    from rgw.cli.qr import CAPTION, qr_lines
    from rgw.cli.render import QrCodes

    out = io.StringIO()
    render = LiveRenderer(out, ["prod"], clock=lambda: 0.0, columns=lambda: 80, qr=QrCodes(lambda: 80))
    render(ev.BrowserOpening("prod", URL))
    render(ev.BrowserOpening("prod", URL))  # Enter opens the browser again: the code is not drawn twice
    text = out.getvalue()
    assert text.count(CAPTION) == 1
    assert "\n".join([f"If it does not open, visit: {URL}", CAPTION, *qr_lines(URL)]) in text
    narrow = io.StringIO()
    TextRenderer(narrow, qr=QrCodes(lambda: 30))(ev.BrowserUnavailable("prod", URL, "--no-browser"))
    needed = len(qr_lines(URL)[0])
    assert narrow.getvalue() == (
        f"Open this URL in your browser: {URL}\n"
        f"(The QR code of the sign-in URL needs {needed} columns; this terminal has 30.)\n"
    )


WALK = "http://127.0.0.1:40001/0123456789abcdefghijkl"


def test_the_one_tab_walk_in_plain_lines() -> None:
    out = io.StringIO()
    render = TextRenderer(out, prefix_racks=True)
    for event in (
        ev.WalkOpening("", WALK, 3),
        ev.WalkQueued("a", URL, returns=True),
        ev.WalkQueued("d", URL + "\x1b[2J", returns=False),
        ev.WalkProgress("", 1, 0, 3),
        ev.WalkProgress("", 3, 1, 3),
        ev.WalkAvailable("", WALK, 3),
    ):
        render(event)
    assert out.getvalue().splitlines() == [
        "Opening one browser tab to sign in to 3 racks...",  # the whole login's lines carry no rack
        f"If it does not open, visit: {WALK}",
        "[d] This rack's gateway does not send the browser back: sign in with its link on the one-tab page, "
        f"or visit: {URL}\\x1b[2J",
        "1 of 3 racks finished.",
        "3 of 3 racks finished, 1 failed.",
        f"To sign in to all 3 racks in one browser tab on this machine, visit: {WALK}",
    ]


def test_the_live_block_leads_with_the_walk_progress() -> None:
    out = io.StringIO()
    render = LiveRenderer(out, ["a", "b"], clock=lambda: 100.0)
    render(ev.WalkOpening("", WALK, 2))
    render(ev.LoggedIn("a", "x@y.z"))
    render(ev.WalkProgress("", 1, 0, 2))
    text = out.getvalue()
    assert f"\nIf it does not open, visit: {WALK}\n" in "\n" + text  # kept above the block, no "[]" prefix
    assert "[]" not in text
    last_block = text.split("\x1b[J")[-1]
    assert last_block.splitlines()[0] == "1 of 2 racks finished."
    assert last_block.splitlines()[1] == "✓ logged in   a  x@y.z"
    assert "" not in render.status  # the whole login's events are not a rack of the block


def test_table_columns_line_up_when_a_cell_has_escaped_control_characters() -> None:
    from rgw.cli.style import table

    lines = table([("evil\x1b[31mred", "logged in"), ("ok", "failed")], ("RACK", "RESULT"))
    shown = "evil\\x1b[31mred"  # 15 columns as printed
    assert lines == ["RACK" + " " * 13 + "RESULT", shown + "  logged in", "ok" + " " * 15 + "failed"]


def test_the_live_block_says_a_coalesced_rack_waits_for_the_other_process() -> None:
    out = io.StringIO()
    render = LiveRenderer(out, ["a", "b"], clock=lambda: 100.0)
    render(ev.CoalescedWait("a", 4242, URL))
    block = out.getvalue().split("\x1b[J")[-1].splitlines()
    assert block[-2] == "⠋ waiting     a    0 s  for the login in process 4242"
    assert URL not in out.getvalue()  # its link is on the one-tab page


def test_the_waiting_line_speaks_of_mfa_only_when_rgw_knows_the_account_has_it() -> None:
    """Issue 21: as short as before when nothing is known; the seed's line, and where the code goes, when known."""
    assert describe(ev.Waiting("prod", "browser")) == (
        "Waiting for the browser sign-in to finish (and for MFA there, if your account requires it)..."
    )
    assert describe(ev.Waiting("prod", "browser", "terminal")) == (
        "Waiting for the browser sign-in to finish...\nMFA verification required.\n"
        "Enter TOTP code (here, or in the browser once signed in):"
    )
    assert (describe(ev.Waiting("prod", "browser", "terminal", "backup_code")) or "").endswith(
        "Enter backup code (here, or in the browser once signed in):"
    )
    assert "--mfa-code" in (describe(ev.Waiting("prod", "browser", "given")) or "")
