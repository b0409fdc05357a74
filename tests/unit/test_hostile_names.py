"""A hostile rack name (or gateway text) never reaches the terminal raw (issue 20, item 7).

Every ``LoginEvent`` subclass is built with hostile text in each of its string fields and rendered
by every renderer a login can use (plain lines with and without the rack prefix, the live block
for one rack and for many, the QR codes); the MFA prompt and its notices get a hostile rack name
too.  What comes out may carry no escape, bell, C1 or bidirectional control character, only the
live block's own cursor movement.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import re
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from rgw.cli.live import LiveRenderer
from rgw.cli.mfa import NoTerminalPrompter, RackPrompter, TerminalPrompter
from rgw.cli.render import QrCodes, TextRenderer
from rgw.cli.terminal import TerminalLines
from rgw.login import events as ev

#: A rack name another tool wrote to config.json: a window title, a clear screen, a C1 CSI, a
#: right-to-left override, an isolate, a line break that forges a line of its own.
HOSTILE = "e\x1b]0;PWNED\x07\x1b[2J\x9b31m\u202eevil\u2066x\u200f\nLogged in as admin@example.com\r"
#: What may not reach a terminal: ESC, BEL, CR, C0 and C1 controls, bidi marks, overrides, isolates.
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: The live block's own cursor movement (up N lines, clear to the end of the screen): ours, allowed.
OWN_MOVES = re.compile(r"\x1b\[\d+F\x1b\[J")


def all_event_classes() -> list[type[ev.LoginEvent]]:
    found: list[type[ev.LoginEvent]] = []
    pending = [ev.LoginEvent]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__ == ev.__name__ and sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


def value_for(annotation: str, flag: bool) -> Any:
    """A value of the field's declared type: hostile text for every string."""
    kind = annotation.replace(" ", "")
    if kind.startswith("str"):
        return HOSTILE
    if kind.startswith("tuple[str"):
        return (HOSTILE, "totp")
    if kind == "bool":
        return flag
    if kind.startswith("int"):
        return 3
    if kind == "float":
        return 42.0
    raise AssertionError(f"no hostile value for a field of type {annotation}")


def hostile_events(rack: str) -> Iterator[ev.LoginEvent]:
    """Each event class with each combination of its flags (every branch of the renderers)."""
    for cls in all_event_classes():
        fields = [f for f in dataclasses.fields(cls) if f.name != "rack"]
        flags = [f for f in fields if str(f.type) == "bool"]
        for combination in itertools.product((False, True), repeat=len(flags)):
            chosen = dict(zip((f.name for f in flags), combination, strict=True))
            values = {f.name: chosen.get(f.name, value_for(str(f.type), False)) for f in fields}
            yield cls(rack, **values)


def assert_safe(text: str) -> None:
    shown = OWN_MOVES.sub("", text)
    bad = FORBIDDEN.findall(shown)
    assert not bad, f"raw control characters {bad!r} reached the terminal in {shown!r}"


def test_the_walk_covers_every_event_class() -> None:
    names = {cls.__name__ for cls in all_event_classes()}
    # Grown by hand only if the events module loses one: a new event class is walked by itself.
    assert {"BrowserOpening", "MfaPrompt", "LoginFailed", "WalkProgress", "CoalescedWait"} <= names
    assert len(names) == len(
        [
            name
            for name, obj in vars(ev).items()
            if isinstance(obj, type) and issubclass(obj, ev.LoginEvent) and obj is not ev.LoginEvent
        ]
    )


@pytest.mark.parametrize("rack", [HOSTILE, "", "prod"])
def test_every_event_through_the_plain_renderers_is_printable(rack: str) -> None:
    for prefix in (False, True):
        out = io.StringIO()
        render = TextRenderer(out, prefix_racks=prefix, qr=QrCodes(lambda: 200))
        for event in hostile_events(rack):
            render(event)
        assert out.getvalue(), "the renderer said nothing"
        assert_safe(out.getvalue())


@pytest.mark.parametrize("racks", [[HOSTILE], [HOSTILE, "b"], ["a", HOSTILE]])
def test_every_event_through_the_live_block_is_printable(racks: list[str]) -> None:
    out = io.StringIO()
    now = [0.0]
    render = LiveRenderer(out, racks, clock=lambda: now[0], columns=lambda: 80, qr=QrCodes(lambda: 200))
    for rack in racks:
        for event in hostile_events(rack):
            now[0] += 1.0
            render(event)
            render.frame += 1
            render._draw()  # a spinner frame between events, as ``animate`` draws it
    render.close()
    assert out.getvalue()
    assert_safe(out.getvalue())


@pytest.mark.anyio
async def test_the_mfa_prompt_and_its_notices_name_a_hostile_rack_printably() -> None:
    read, write = os.pipe()
    os.write(write, b"123456\n")
    os.close(write)
    err = io.StringIO()
    with open(read, closefd=True) as stdin:
        prompter = RackPrompter(TerminalPrompter(TerminalLines(stdin), err), HOSTILE)
        with anyio.fail_after(10):
            assert await prompter.ask("Enter TOTP code:", hidden=True) == "123456"
        prompter.notify(f"{HOSTILE}; using a backup code instead.")
    RackPrompter(NoTerminalPrompter(err), HOSTILE).notify(HOSTILE)
    text = err.getvalue()
    assert_safe(text)
    assert text.startswith("[e\\x1b]0;PWNED\\x07\\x1b[2J\\x9b31m\\u202eevil")
    assert "Enter TOTP code:" in text
    assert "\nLogged in" not in text  # a line break in the name forges no line of its own
    assert len(text.splitlines()) == 3  # the prompt (ended by the line break after the code), two notices
