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


def test_without_secrets_takes_out_every_secret_and_a_short_code_only_as_a_word() -> None:
    from rgw.text import without_secrets

    text = "token abcdefgh12 and abcdefgh1234, code 246813 (not in 12468135 or x246813), short abc"
    assert without_secrets(text, {"abcdefgh12", "abcdefgh1234", "246813", "abc", ""}) == (
        "token <redacted> and <redacted>, code <redacted> (not in 12468135 or x246813), short abc"
    )


def test_a_run_keeps_its_secrets_and_outside_a_run_nothing_is_kept() -> None:
    import contextvars

    from rgw.text import keep_secrets, run_secrets, start_run_secrets

    def outside() -> set[str]:
        keep_secrets(["outside-secret"])
        return run_secrets()

    assert contextvars.Context().run(outside) == set()

    def inside() -> set[str]:
        mine: set[str] = set()
        start_run_secrets(mine)
        keep_secrets(["  a-secret-value \n", None, "", "12345"])
        assert run_secrets() is mine
        return mine

    assert contextvars.Context().run(inside) == {"a-secret-value"}
