"""What `camelid-cli complete` shows on stderr while a job moves through its states.

It draws the job's history (every state the node saw it reach, with the time), not only the state at each
poll, so short-lived states such as "paid" show too. On a terminal one line is rewritten in place (the
states so far and the time since submission), so the wait is visibly alive; anywhere else (a pipe, a log
file) each new state gets a line of its own with the time it was reached, and nothing is rewritten.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TextIO

ERASE_LINE = "\r\x1b[K"
SHOWN_ID_DIGITS = 16


class JobProgress:
    """Call `show(history)` on every poll and `finish()` once; writes to `stream`."""

    def __init__(self, job_id: str, stream: TextIO, tty: bool, clock: Callable[[], float] = time.time) -> None:
        self._label = f"job {job_id[:SHOWN_ID_DIGITS]}"
        self._stream = stream
        self._tty = tty
        self._clock = clock  # UNIX seconds, as the history's times
        self._shown = 0  # history entries already drawn

    def show(self, history: Sequence[tuple[str, float]]) -> None:
        """Draw `history`: (state, UNIX time reached) pairs, oldest first, as getjob lists them."""
        if not history:
            return
        created = history[0][1]
        if self._tty:
            states = " > ".join(state for state, _ in history)
            self._stream.write(f"{ERASE_LINE}{self._label}: {states} ({self._clock() - created:.1f} s)")
        else:
            for state, reached in history[self._shown :]:
                self._stream.write(f"{self._label}: {state} after {reached - created:.1f} s\n")
        self._shown = len(history)
        self._stream.flush()

    def finish(self) -> None:
        """End the rewritten line, so what follows starts on a line of its own."""
        if self._tty and self._shown:
            self._stream.write("\n")
            self._stream.flush()
