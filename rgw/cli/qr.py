"""``login --qr``: the sign-in URL as a QR code on the terminal, to sign in on a phone.

segno draws it with Unicode half blocks (two rows of modules per line, no escape sequences, so it
survives ``TERM=dumb``, ``NO_COLOR`` and a log file): light modules are ``█``, dark ones the
terminal's background, which reads right on the usual dark terminal; phone scanners read the
inverted code on a light one too.  To fit a terminal the code is as small as scans: error
correction L (not raised when the size would allow more), and a quiet zone of two modules (phone
scanners read it; the standard's four cost four more columns and two more rows).  The URL follows
the code as well, so it is on the screen even when the code pushed the lines above it out of sight.
"""

from __future__ import annotations

import io
import math

from rgw.text import printable

#: Modules of light border around the code.
QUIET_ZONE = 2
CAPTION = "Scan to sign in on your phone:"


def qr_lines(url: str) -> list[str]:
    """``url`` as a QR code (error correction L), one string a row."""
    import segno

    code = segno.make_qr(url, error="l", boost_error=False)
    out = io.StringIO()
    code.terminal(out=out, border=QUIET_ZONE, compact=True)
    return out.getvalue().splitlines()


def qr_block(url: str, columns: int, rows: int | None = None) -> list[str]:
    """The caption, the code and the URL again; a line saying why not when the terminal is too narrow
    for the code, and a warning when it is too short to show the code whole with the URL under it
    (``rows`` None: not a terminal)."""
    lines = qr_lines(url)
    needed = max(len(line) for line in lines)
    if needed > columns:
        return [f"(The QR code of the sign-in URL needs {needed} columns; this terminal has {columns}.)"]
    after = f"Sign-in URL: {printable(url)}"
    # The code, the URL under it (wrapped), and the line the login's progress or prompt takes.
    tall = len(lines) + math.ceil(len(after) / max(1, columns)) + 1
    warning = []
    if rows is not None and tall > rows:
        warning = [
            f"(The QR code and the URL under it need {tall} rows; this terminal has {rows}: "
            "scroll up or make the window taller to see the whole code.)"
        ]
    return [CAPTION, *lines, *warning, after]
