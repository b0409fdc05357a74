"""A small terminal for tests: what a screen shows after the bytes rgw writes to it.

Enough of a VT100 for rgw's output: text (wrapped at the width; wide characters take two columns),
``\\r``, ``\\n``, ``CSI n F`` (to the start of the line n rows up, never above the screen's top),
``CSI J`` (erase from the cursor to the end of the screen) and ``CSI ... m`` (colour: dropped).
Rows past the screen's height scroll into the history, as a terminal's do.
"""

from __future__ import annotations

import re

from rgw.cli.style import char_width

_CSI = re.compile(r"\x1b\[([0-9;]*)([A-Za-z])")


class Screen:
    def __init__(self, columns: int = 80, rows: int = 24) -> None:
        self.columns = columns
        self.rows = rows
        self.lines: list[list[str]] = [[]]
        self.row = 0
        self.col = 0
        self.top = 0  # the history's row at the top of the screen

    def feed(self, text: str) -> Screen:
        at = 0
        while at < len(text):
            found = _CSI.match(text, at)
            if found is not None:
                self._control(found.group(1), found.group(2))
                at = found.end()
                continue
            char = text[at]
            at += 1
            if char == "\n":
                self._down()
            elif char == "\r":
                self.col = 0
            else:
                self._put(char)
        return self

    def _control(self, argument: str, final: str) -> None:
        if final == "F":
            self.row = max(self.top, self.row - int(argument or "1"))
            self.col = 0
        elif final == "J" and argument in ("", "0"):
            line = self.lines[self.row]
            del line[self.col :]
            del self.lines[self.row + 1 :]
        elif final != "m":
            raise AssertionError(f"the test screen does not know CSI {argument}{final}")

    def _down(self) -> None:
        self.row += 1
        self.col = 0
        while len(self.lines) <= self.row:
            self.lines.append([])
        if self.row >= self.top + self.rows:
            self.top = self.row - self.rows + 1

    def _put(self, char: str) -> None:
        wide = char_width(char)
        if self.col + wide > self.columns:
            self._down()
        line = self.lines[self.row]
        while len(line) < self.col + wide:
            line.append(" ")
        if wide:
            line[self.col : self.col + wide] = [char] + [""] * (wide - 1)  # one cell a column
        elif self.col:
            line[self.col - 1] += char  # a combining mark joins the character before it
        self.col += wide

    def history(self) -> list[str]:
        """Every row ever shown, the screen's last; trailing blanks dropped."""
        shown = ["".join(line).rstrip() for line in self.lines]
        while shown and not shown[-1]:
            shown.pop()
        return shown

    def screen(self) -> list[str]:
        """The rows on the screen now (trailing blank rows dropped)."""
        return self.history()[self.top : self.top + self.rows]
