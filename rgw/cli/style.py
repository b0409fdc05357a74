"""Tables, colour and widths for text output, with no heavy imports (local commands use them).

Colour is an SGR code around a piece of text, added only when the ``App`` says the stream takes
colour (a TTY, ``TERM`` not ``dumb``, no ``NO_COLOR``).  Widths count terminal columns, not code
points: an East Asian wide character takes two, a combining mark none, so a cut line still fits.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime

from rgw.text import printable

RED = "31"
GREEN = "32"
YELLOW = "33"
BOLD_RED = "1;31"
DIM = "2"


def paint(text: str, code: str, *, color: bool) -> str:
    """``text`` in SGR colour ``code`` when ``color``, else unchanged."""
    return f"\x1b[{code}m{text}\x1b[0m" if color and text else text


def char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def width(text: str) -> int:
    """Terminal columns ``text`` takes (printable text: no escape sequences in it)."""
    if text.isascii():
        return len(text)
    return sum(char_width(c) for c in text)


def fit(text: str, columns: int) -> str:
    """``text`` cut to at most ``columns`` terminal columns, ending in ``…`` when cut."""
    if width(text) <= columns:
        return text
    if columns <= 0:
        return ""
    out: list[str] = []
    used = 0
    for char in text:
        w = char_width(char)
        if used + w > columns - 1:
            break
        out.append(char)
        used += w
    return "".join(out) + "…"


def retry_line(kind: str, error: str, attempt: int, delay: float) -> str:
    """``Gateway unreachable (connection reset) - retrying (attempt 2, next in 0.4 s)``."""
    what = {
        "rate_limited": "Rate limited by the gateway",
        "gateway_error": f"Gateway error ({error})",
    }.get(kind, f"Gateway unreachable ({error})")
    return f"{what} - retrying (attempt {attempt}, next in {delay:.1f} s)"


def table(
    rows: Sequence[Sequence[str]],
    headers: Sequence[str],
    *,
    colors: Sequence[Sequence[str | None]] | None = None,
    color: bool = False,
    columns: int | None = None,
    shrink: Sequence[Sequence[int]] = (),
    details: Sequence[str | None] | None = None,
    detail_at: int = 0,
) -> list[str]:
    """Rows as left-aligned columns two spaces apart, headers first; every cell made printable.

    ``colors`` gives each cell of ``rows`` an SGR code (or None); it is applied after padding, so
    coloured and plain tables line up the same.  With ``columns`` (the terminal's width) the
    columns in ``shrink`` (stages of column indexes: the first stage first) are narrowed until a
    line fits; a cell cut short ends in ``…``.  ``details`` puts a row's long text on a line of its
    own under it, starting where column ``detail_at`` starts (at column 5 when that leaves too
    little room), cut to ``columns``.
    """
    # Measured as shown: an escaped control character takes the width of its escape.
    widths = [max(width(printable(str(r[i]))) for r in [headers, *rows]) for i in range(len(headers))]
    if columns is not None:
        _narrow(widths, headers, columns, shrink)

    def line(row: Sequence[str], codes: Sequence[str | None] | None) -> str:
        cells = []
        for i, cell in enumerate(row):
            text = fit(printable(str(cell)), widths[i])  # escaped here: the colour codes are the only SGR
            padded = text + " " * (widths[i] - width(text))
            code = codes[i] if codes is not None else None
            cells.append(paint(text, code, color=color) + padded[len(text) :] if code else padded)
        return "  ".join(cells).rstrip()

    indent = sum(w + 2 for w in widths[:detail_at])
    room = (columns or 10_000) - indent
    if room < 24:
        indent, room = 5, (columns or 10_000) - 5
    out = [line(headers, None)]
    for index, row in enumerate(rows):
        out.append(line(row, colors[index] if colors is not None else None))
        detail = details[index] if details is not None else None
        if detail:
            out.append(" " * indent + fit(printable(detail), room))
    return out


def _narrow(widths: list[int], headers: Sequence[str], columns: int, shrink: Sequence[Sequence[int]]) -> None:
    """Take what is over ``columns`` from the ``shrink`` columns, stage by stage; within a stage the
    widest first (ties: the first named); none below its header's width (or 6)."""
    excess = sum(widths) + 2 * (len(widths) - 1) - columns
    for stage in shrink:
        floors = {i: max(width(headers[i]), 6) for i in stage}
        while excess > 0:
            open_ = [i for i in stage if widths[i] > floors[i]]
            if not open_:
                break
            widest = max(open_, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1


def when(value: object, now: datetime) -> str:
    """A gateway's time as people read it: ``just now``, ``5 min ago``, ``in 3 h``, ``2 d ago``, else
    ``2026-12-07 09:35 UTC``; ``-`` when there is none, ``unknown`` when unparsable or out of range."""
    from rgw.models import parse_time

    if value in (None, ""):
        return "-"
    moment = parse_time(value)
    if moment is None:
        return "unknown"
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    if size < 60:
        return "just now"
    if size >= 7 * 86400:
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    amount, unit = next((int(size // s), u) for s, u in ((86400, "d"), (3600, "h"), (60, "min")) if size >= s)
    return f"in {amount} {unit}" if seconds > 0 else f"{amount} {unit} ago"


def time_left(expires_at: str | None, now: datetime) -> str:
    """``89d left``, ``5h left``, ``12m left``; a passed expiry is the gateway's to judge (sessions slide).

    No expiry is ``""``; one that is unparsable or out of range (``rgw.models.parse_time``) is unknown.
    """
    from rgw.models import parse_time

    if not expires_at:
        return ""
    expires = parse_time(expires_at)
    if expires is None:
        return "expiry unknown"
    seconds = (expires - now).total_seconds()
    if seconds <= 0:
        return "expiry passed; the gateway decides"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} left"
    return "<1m left"
