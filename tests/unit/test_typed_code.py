"""Which lines typed while a login waits are MFA codes (sent to the gateway) and which are not (issue 21).

A line taken for a code that is not one would count as a failed MFA attempt at the gateway, so
anything doubtful is not a code.
"""

from __future__ import annotations

import pytest

from rgw.login.mfa import typed_code

YUBIKEY = "cccccbhkevkdjnvdihtfkrliefhlctcbbfuhvcecgkte"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("123456", "123456"),
        ("  123456\r", "123456"),
        ("123 456", "123456"),
        ("a1b2c-3d4e5", "a1b2c-3d4e5"),  # the reference gateway's backup codes
        ("ABCD-1234", "ABCD-1234"),
        ("12345678", "12345678"),
        (YUBIKEY, YUBIKEY),
    ],
)
def test_codes(line: str, code: str) -> None:
    assert typed_code(line) == code


@pytest.mark.parametrize(
    "line",
    [
        "",
        "12345",
        "1234567",  # a TOTP code with a digit too many: a typo, not a backup code
        "hello world",
        "somethinglong",  # letters only: a word
        "http://127.0.0.1:8080/?state=abc&result=ok",
        "state=abc&result=ok",
        "١٢٣٤٥٦",  # digits, but not ASCII ones
        "\x1b[31m123456",
        "12345678901234567890",
        YUBIKEY + "c",
        YUBIKEY[:-1] + "a",  # not modhex, and too long for a backup code
    ],
)
def test_not_codes(line: str) -> None:
    assert typed_code(line) is None
