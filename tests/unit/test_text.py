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


def test_limit_keeps_text_of_exactly_the_limit_and_a_zero_limit_shows_only_the_ellipsis() -> None:
    assert printable("abcde", limit=5) == "abcde"
    assert printable("abcdef", limit=5) == "abcd…"
    assert printable("abc", limit=0) == "…"


def test_a_character_beyond_the_basic_plane_is_escaped_with_eight_hex_digits() -> None:
    # U+E0001 LANGUAGE TAG: invisible; four-digit \u form would read as \ue000 followed by "1".
    assert printable("a\U000e0001b") == "a\\U000e0001b"
    assert printable("\u2066") == "\\u2066"
    assert printable("\x00") == "\\x00"


def test_without_secrets_checks_every_secret_after_one_that_is_absent() -> None:
    from rgw.text import without_secrets

    assert without_secrets("id secret-present", ["zzzzzzzz-absent-longer", "secret-present"]) == "id <redacted>"


def test_without_secrets_takes_a_secret_of_eight_characters_out_of_a_longer_word() -> None:
    from rgw.text import without_secrets

    assert without_secrets("xabcd1234y", ["abcd1234"]) == "x<redacted>y"


def test_without_secrets_takes_out_a_secret_containing_another_whole() -> None:
    from rgw.text import without_secrets

    # "secret99" sorts after "asecret99": only the longest-first order leaves no "a" behind.
    assert without_secrets("token asecret99 end", ["secret99", "asecret99"]) == "token <redacted> end"


def test_in_run_tells_a_run_from_library_use() -> None:
    import contextvars

    from rgw.text import in_run, start_run_secrets

    def inside() -> bool:
        start_run_secrets(set())
        return in_run()

    assert contextvars.Context().run(in_run) is False
    assert contextvars.Context().run(inside) is True


@pytest.mark.parametrize(
    ("value", "fit"),
    [
        ("abc.DEF-123_~!", True),
        ("x", True),
        ("!" + "~" * 4095, True),  # the printable ASCII bounds, at the longest accepted
        ("x" * 4097, False),
        ("", False),
        ("two words", False),
        ("line\r\n", False),
        ("tab\t", False),
        ("del\x7f", False),
        ("caf\u00e9", False),
        (None, False),
        (b"bytes-token", False),
        (12345678, False),
    ],
)
def test_is_token_takes_only_printable_ascii_without_whitespace_up_to_the_longest(value: object, fit: bool) -> None:
    from rgw.text import MAX_TOKEN, is_token

    assert MAX_TOKEN == 4096
    assert is_token(value) is fit


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("prod", True),
        ("p", True),
        ("9-rack_2.eu", True),
        ("", False),
        ("-rack", False),  # an option to a parser
        (".rack", False),
        ("_rack", False),
        ("\u0661rack", False),  # an Arabic-Indic digit: alphanumeric, not ASCII
        ("\u00e9rack", False),
        ("rack\u00e9", False),
        ("rack name", False),
        ("rack/x", False),
        ("rack$x", False),
    ],
)
def test_is_plain_name_takes_ascii_letters_digits_dot_dash_underscore_led_by_a_letter_or_digit(
    name: str, plain: bool
) -> None:
    from rgw.text import is_plain_name

    assert is_plain_name(name) is plain


def test_find_secret_gives_the_value_of_the_matching_secret_and_never_matches_an_empty_one() -> None:
    from rgw.text import find_secret

    pairs = [("", "empty"), ("state-one", 1), ("state-two", 2)]
    assert find_secret("state-two", pairs) == 2
    assert find_secret("state-one", pairs) == 1
    assert find_secret("state-three", pairs) is None
    assert find_secret("", pairs) is None
    assert find_secret("st\udcffate", [("st\udcffate", "lone surrogate")]) == "lone surrogate"
