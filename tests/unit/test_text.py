"""printable(): foreign text can never drive the terminal."""

from __future__ import annotations

import pytest

from rgw.text import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("developer@company.com", "developer@company.com"),
        ("München app ✓", "München app ✓"),
        ("\x1b]0;TITLE\x07\x1b[2J", "\\x1b]0;TITLE\\x07\\x1b[2J"),
        ("line one\nLogged in as admin", "line one\\nLogged in as admin"),
        ("tab\there\r", "tab\\there\\r"),
        ("\x9b31m", "\\x9b31m"),  # a C1 control sequence introducer
        ("abc\u202eevil", "abc\\u202eevil"),  # a right-to-left override
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("\x7f", "\\x7f"),
    ],
)
def test_control_and_format_characters_are_escaped(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(raw).isprintable()


def test_limit_cuts_long_text() -> None:
    assert printable("x" * 10, limit=5) == "xxxx…"
    assert printable(42) == "42"
