"""What an 80-column terminal shows (issue 22): a many-rack login, ``-v`` under the live block, ``--qr``.

The renderers write into a fake terminal stream; ``tests.screen.Screen`` plays the bytes as a
terminal does (cursor movement, erase, wrapping at 80 columns) and the tests compare the rows.
"""

from __future__ import annotations

import io
import logging
import re

import anyio
import pytest

from rgw.cli.live import LiveRenderer
from rgw.cli.qr import CAPTION, qr_block, qr_lines
from rgw.cli.render import QrCodes
from rgw.login import events as ev
from tests.screen import Screen

PAGE = "http://127.0.0.1:40651/qveK_kIalOdy5a6-bHv0gw"
#: A deployed gateway's sign-in: Google's authorization URL, 447 characters.
GOOGLE = (
    "https://accounts.google.com/o/oauth2/v2/auth?client_id=123456789012-abcdefghijklmnopqrstuvwxyz012345.apps."
    "googleusercontent.com&redirect_uri=https%3A%2F%2Fgateway.example.com%2Fapi%2Fv1%2Fauth%2Fcli%2Fcallback"
    "&response_type=code&scope=openid+email+profile&state=l8XvOAUxfEDpR_kQPhkRiCTi5xEJBexI5p6O2XA2aDQ&access_type"
    "=online&prompt=select_account&hd=example.com&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code"
    "_challenge_method=S256"
)
#: The reference gateway's sign-in, 111 characters.
SHORT = (
    "http://127.0.0.1:18511/oauth/authorize?state=l8XvOAUxfEDpR_kQPhkRiCTi5xEJBexI5p6O2XA2aDQ&client_id=rack-gateway"
)
REFUSED = "gateway 127.0.0.1:1 unreachable: connection refused"
RACKS = [f"x{i:02d}" for i in range(20)]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def live(
    racks: list[str], now: list[float], *, full_urls: bool = False, rows: int = 24
) -> tuple[Terminal, LiveRenderer]:
    out = Terminal()
    return out, LiveRenderer(
        out, racks, clock=lambda: now[0], columns=lambda: 80, rows=lambda: rows, full_urls=full_urls
    )


def deployed_walk(render: LiveRenderer, now: list[float], racks: list[str]) -> None:
    """Eight racks start (``--parallel 8``), x04's gateway is down, the others are links on the page."""
    render(ev.WalkOpening("", PAGE, len(racks)))
    for rack in racks[:8]:
        render(ev.LoginStarted(rack))
    now[0] = 2.0
    for rack in racks[:8]:
        if rack == "x04":
            render(ev.GatewayRetry(rack, 3, 1.7, REFUSED))
            continue
        render(ev.GatewayReachable(rack, "https://gateway.example.com", False))
        render(ev.WalkQueued(rack, GOOGLE, returns=False))
        render(ev.Waiting(rack, "browser"))
    now[0] = 5.0
    render(ev.LoggedIn("x00", "developer@example.com"))
    render(ev.LoginStarted("x08"))
    render(ev.LoginFailed("x04", REFUSED))
    render.tick()


def test_a_twenty_rack_login_at_deployed_gateways_fits_an_80x24_screen() -> None:
    now = [0.0]
    out, render = live(RACKS, now)
    deployed_walk(render, now, RACKS)
    screen = Screen(80, 24).feed(out.getvalue())
    assert screen.screen() == [
        "Opening one browser tab to sign in to 20 racks...",
        f"If it does not open, visit: {PAGE}",
        "2 of 20 racks finished, 1 failed.",
        "✓ logged in   x00  developer@example.com",
        "⠙ waiting     x01    5 s  sign in with its link on the one-tab page",
        "⠙ waiting     x02    5 s  sign in with its link on the one-tab page",
        "⠙ waiting     x03    5 s  sign in with its link on the one-tab page",
        f"✗ failed      x04  {REFUSED}",
        "⠙ waiting     x05    5 s  sign in with its link on the one-tab page",
        "⠙ waiting     x06    5 s  sign in with its link on the one-tab page",
        "⠙ waiting     x07    5 s  sign in with its link on the one-tab page",
        "⠙ contacting  x08    0 s",
        *[f"· queued      x{i:02d}" for i in range(9, 20)],
    ]
    assert screen.history() == screen.screen()  # nothing scrolled away
    assert GOOGLE[:60] not in out.getvalue()  # the page's one URL stands for the racks' links
    render.close()
    assert Screen(80, 24).feed(out.getvalue()).history() == [
        "Opening one browser tab to sign in to 20 racks...",
        f"If it does not open, visit: {PAGE}",
    ]  # the command's table follows: the failure is said there, not a third time


def test_each_racks_url_is_printed_with_no_browser_or_stdout_off_a_terminal() -> None:
    now = [0.0]
    out, render = live(["x00", "x01"], now, full_urls=True)
    render(ev.LoginStarted("x00"))
    render(ev.WalkQueued("x00", SHORT, returns=False))
    render(ev.BrowserUnavailable("x01", SHORT, "--no-browser"))
    assert Screen(80, 24).feed(out.getvalue()).screen() == [
        "[x00] This rack's gateway does not send the browser back: sign in with its link",
        f"on the one-tab page, or visit: {SHORT[:49]}",
        SHORT[49:],
        f"[x01] Open this URL in your browser: {SHORT[:43]}",
        SHORT[43:],
        "⠋ waiting     x00    0 s  sign in with its link on the one-tab page",
        "⠋ waiting     x01    0 s  open its URL (above) in a browser",
    ]


def test_the_renderer_prints_each_racks_url_only_off_a_terminal_or_with_no_browser() -> None:
    from rgw.cli.app import App
    from rgw.cli.auth import make_renderer

    environ = {"TERM": "xterm"}
    cases = [(Terminal(), False, False), (io.StringIO(), False, True), (Terminal(), True, True)]
    for stdout, no_browser, full in cases:
        render = make_renderer(App(environ=environ, out=stdout, err=Terminal()), "text", RACKS, all_urls=no_browser)
        assert isinstance(render, LiveRenderer)
        assert render.full_urls is full, (stdout, no_browser)


def test_the_live_block_never_grows_past_the_screen() -> None:
    racks = [f"r{i:02d}" for i in range(40)]
    now = [0.0]
    out, render = live(racks, now, rows=24)
    for rack in racks[:8]:
        render(ev.LoginStarted(rack))
    for rack in racks[:4]:
        render(ev.LoggedIn(rack, "developer@example.com"))
    render(ev.LoginFailed("r05", "user not authorized"))
    render.tick()
    assert Screen(80, 24).feed(out.getvalue()).screen() == [
        "5 of 40 racks finished, 1 failed.",  # the racks logged in are counted here, not listed
        "⠙ contacting  r04    0 s",
        "✗ failed      r05  user not authorized",
        "⠙ contacting  r06    0 s",
        "⠙ contacting  r07    0 s",
        *[f"· queued      r{i:02d}" for i in range(8, 25)],
        "  … 15 more racks",
    ]  # 23 rows: the cursor's row stays free


# -- -v: log lines go above the block and stay ---------------------------------------------------


def test_verbose_lines_stay_above_the_live_block() -> None:
    from rgw import trace
    from rgw.cli.app import App

    now = [0.0]
    out, render = live(["x00", "x01"], now)
    app = App(environ={"TERM": "xterm"}, err=out)
    assert app.start_verbose()
    try:
        with app.lines_above(render.write_above):
            render(ev.LoginStarted("x00"))
            trace.debug("POST https://gw/api/v1/auth/cli/start -> 200 (0.012 s)")
            render.tick()
            render(ev.LoginStarted("x01"))
            app.note("A notice for the user.")
            render.tick()
            trace.debug("POST https://gw/api/v1/auth/cli/complete -> 202 (0.020 s)")
            render.tick()
            render.close()
    finally:
        app.stop_verbose()
    shown = [re.sub(r"\+\d+\.\d{3}s", "+0.000s", line) for line in Screen(80, 24).feed(out.getvalue()).history()]
    assert shown == [
        "[rgw +0.000s] rack-gateway " + shown[0].split("rack-gateway ", 1)[1],
        "[rgw +0.000s] POST https://gw/api/v1/auth/cli/start -> 200 (0.012 s)",
        "A notice for the user.",
        "[rgw +0.000s] POST https://gw/api/v1/auth/cli/complete -> 202 (0.020 s)",
    ]  # every line kept, no spinner line left behind


@pytest.mark.anyio
async def test_a_cancelled_try_is_not_logged_as_a_retry() -> None:
    from rgw.retry import RetryPolicy
    from rgw.trace import LOGGER

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep(logging.DEBUG)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    started = anyio.Event()

    async def waits() -> None:
        started.set()
        await anyio.sleep_forever()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(RetryPolicy.instant().call, waits)
            await started.wait()
            tg.cancel_scope.cancel()  # another rack's login won, or the deadline passed
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert [r for r in records if r.startswith("retry:")] == []


# -- --qr: the smallest code that scans, the URL after it, and a word when it does not fit -------------


def test_the_qr_code_is_as_small_as_scans() -> None:
    short, long = qr_lines(SHORT), qr_lines(GOOGLE)
    # Version 6 (41 modules) and 14 (73), error correction L, a quiet zone of 2: half-block rows.
    assert (max(map(len, short)), len(short)) == (45, 23)
    assert (max(map(len, long)), len(long)) == (77, 39)
    import segno

    code = segno.make_qr(GOOGLE, error="l", boost_error=False)
    assert (code.version, code.error) == (14, "L")


def test_qr_at_80x24_warns_that_the_code_does_not_fit_and_ends_with_the_url() -> None:
    out = Terminal()
    render = LiveRenderer(out, ["prod"], clock=lambda: 0.0, columns=lambda: 80, rows=lambda: 24)
    render.qr = QrCodes(lambda: 80, lambda: 24)
    render(ev.BrowserOpening("prod", SHORT))
    render(ev.Waiting("prod", "browser"))
    code = qr_lines(SHORT)
    assert (
        Screen(80, 24).feed(out.getvalue()).screen()
        == [
            *code[5:],  # its top five rows scrolled away: said under it
            "(The QR code and the URL under it need 26 rows; this terminal has 24: scroll up",
            "or make the window taller to see the whole code.)",
            f"Sign-in URL: {SHORT[:67]}",
            SHORT[67:],
            "⠋   0 s  Waiting for the browser sign-in to finish (and for MFA there, if your…",
        ]
    )
    history = Screen(80, 24).feed(out.getvalue()).history()
    assert history[:5] == [
        "Opening browser for authentication...",
        f"If it does not open, visit: {SHORT[:52]}",
        SHORT[52:],
        CAPTION,
        code[0],
    ]


def test_qr_says_when_the_terminal_is_too_narrow_or_too_short() -> None:
    assert qr_block(GOOGLE, 76, 50) == ["(The QR code of the sign-in URL needs 77 columns; this terminal has 76.)"]
    tall = qr_block(GOOGLE, 80, 30)
    assert tall[0] == CAPTION
    assert tall[1:40] == qr_lines(GOOGLE)
    assert tall[40:] == [
        "(The QR code and the URL under it need 46 rows; this terminal has 30: scroll up or make the "
        "window taller to see the whole code.)",
        f"Sign-in URL: {GOOGLE}",
    ]
    fits = qr_block(SHORT, 80, 40)
    assert fits == [CAPTION, *qr_lines(SHORT), f"Sign-in URL: {SHORT}"]
    assert qr_block(SHORT, 1000, None)[-1] == f"Sign-in URL: {SHORT}"  # off a terminal: no warning


def test_a_retry_that_went_through_leaves_the_racks_line() -> None:
    now = [0.0]
    out, render = live(["x00", "x01"], now)
    render(ev.LoginStarted("x00"))
    render(ev.WalkQueued("x00", GOOGLE, returns=False))
    now[0] = 10.0
    render(ev.GatewayRetry("x00", 1, 0.4, "connection reset"))
    assert Screen(80, 24).feed(out.getvalue()).screen()[0] == (
        "⠋ retrying    x00   10 s  connection reset (attempt 1, next in 0.4 s)"
    )
    now[0] = 15.5  # no next failure within the wait and five seconds: the poll was answered
    render.tick()
    assert Screen(80, 24).feed(out.getvalue()).screen()[0] == (
        "⠙ waiting     x00   16 s  sign in with its link on the one-tab page"
    )


def test_a_new_event_offering_a_racks_link_points_its_line_to_the_page() -> None:
    """The walk may offer a hop rack's link later (its browser stalled): any rack event with an
    ``auth_url`` the block does not know points to the page's link on a terminal."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class LinkOffered(ev.LoginEvent):
        auth_url: str

    now = [0.0]
    out, render = live(["x00", "x01"], now)
    render(ev.LoginStarted("x00"))
    render(ev.WalkQueued("x00", GOOGLE, returns=True))
    render(LinkOffered("x00", GOOGLE))
    assert Screen(80, 24).feed(out.getvalue()).screen() == [
        "⠋ waiting     x00    0 s  sign in with its link on the one-tab page",
        "· queued      x01",
    ]


def test_a_rack_the_tab_did_not_come_back_from_prints_its_url_once_and_points_its_line_to_the_page() -> None:
    """The walk's stalled hop (#22, item 1): the one place a compact multi-rack login prints a rack's
    own URL on a terminal, since the tab that should have carried it stopped."""
    now = [0.0]
    out, render = live(["x00", "x01"], now)
    render(ev.LoginStarted("x00"))
    render(ev.WalkQueued("x00", "https://gw.example/o?s=1", returns=True))
    render(ev.WalkQueued("x00", "https://gw.example/o?s=1", returns=True, stalled=True))
    screen = Screen(80, 24).feed(out.getvalue()).screen()
    assert screen == [
        "[x00] The browser tab has not come back from this rack's sign-in: if it stopped,",
        " sign in with its link on the one-tab page, or visit: https://gw.example/o?s=1",
        "⠋ waiting     x00    0 s  sign in with its link on the one-tab page",
        "· queued      x01",
    ]
