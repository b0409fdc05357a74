"""``login --qr``: the sign-in URL as a QR code on the terminal, to sign in on a phone.

segno draws it with Unicode half blocks (two rows of modules per line, no escape sequences, so it
survives ``TERM=dumb``, ``NO_COLOR`` and a log file): light modules are ``█``, dark ones the
terminal's background, which reads right on the usual dark terminal; phone scanners read the
inverted code on a light one too.  The quiet zone is the standard four modules.
"""

from __future__ import annotations

import io

#: Modules of light border around the code (the QR standard's quiet zone).
QUIET_ZONE = 4
CAPTION = "Scan to sign in on your phone:"


def qr_lines(url: str) -> list[str]:
    """``url`` as a QR code (error correction L, raised as far as the size allows), one string a row."""
    import segno

    code = segno.make_qr(url, error="l")
    out = io.StringIO()
    code.terminal(out=out, border=QUIET_ZONE, compact=True)
    return out.getvalue().splitlines()


def qr_block(url: str, columns: int) -> list[str]:
    """The caption and the code, or a line saying why not when the terminal is too narrow for it."""
    lines = qr_lines(url)
    needed = max(len(line) for line in lines)
    if needed > columns:
        return [f"(The QR code of the sign-in URL needs {needed} columns; this terminal has {columns}.)"]
    return [CAPTION, *lines]
