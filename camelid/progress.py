"""Plain-text progress on stderr: a bar or spinner redrawn in place on a terminal, plain lines elsewhere.

Waiting people want to see that something moves; logs and pipes want one readable line per change,
not a stream of carriage returns. So the same calls draw in place when stderr is a TTY and otherwise
print a line only when the detail changes, at most every LOG_INTERVAL seconds, and one when the step ends.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

SPINNER = "|/-\\"
BAR_WIDTH = 30
REDRAW_INTERVAL = 0.1
LOG_INTERVAL = 5.0
"""Off a terminal, at most one line per this many seconds (and one when the step ends)."""


class Progress:
    """One step of work, with a known `total` (a bar) or without one (a spinner and the elapsed time)."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.started = time.monotonic()
        self._ticks = 0
        self._last_draw = -LOG_INTERVAL  # the first update always shows
        self._last_shown: tuple[int | None, str] | None = None
        self._width = 0

    def update(self, done: int | None = None, detail: str = "") -> None:
        """Show `done` of `total` (bars) and `detail`; cheap to call in a polling loop."""
        if self.interactive:
            now = time.monotonic()
            if now - self._last_draw < REDRAW_INTERVAL:
                return
            self._last_draw = now
            self._ticks += 1
            self._write(self._line(done, detail), end="")
        elif (done, detail) != self._last_shown and time.monotonic() - self._last_draw >= LOG_INTERVAL:
            self._last_draw = time.monotonic()
            self._last_shown = (done, detail)
            self._write(self._line(done, detail), end="\n")

    def finish(self, detail: str = "done", done: int | None = None) -> None:
        """End the step with its elapsed time; the line stays on screen (or in the log)."""
        self._write(self._line(self.total if done is None else done, detail), end="\n")

    def _line(self, done: int | None, detail: str) -> str:
        if self.total is not None and done is not None:
            filled = BAR_WIDTH * min(done, self.total) // max(self.total, 1)
            meter = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{self.total}"
        else:
            meter = SPINNER[self._ticks % len(SPINNER)] if self.interactive else ""
        elapsed = f"{time.monotonic() - self.started:5.1f} s"
        return "  ".join(part for part in (f"  {self.label}", meter, elapsed, detail) if part)

    def _write(self, line: str, end: str) -> None:
        if self.interactive:
            # Redraw over the previous line; pad so a shorter line leaves no tail behind.
            self.stream.write(f"\r{line}{' ' * max(0, self._width - len(line))}{end}")
            self._width = len(line)
        else:
            self.stream.write(line + end)
        self.stream.flush()
