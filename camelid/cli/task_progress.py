"""What `camelid-cli fractal` shows on stderr while a task's tree grows.

On a terminal the whole tree is redrawn in place on every poll: one line per node (its number, subtask and
state), under a header with the task's state and time, so the reader sees the levels fill in parallel.
Anywhere else (a pipe, a log file) each node gets a line when its state changes, and nothing is rewritten.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

UP_AND_ERASE = "\x1b[{lines}F\x1b[J"  # to the start of the line `lines` up, then erase to the end of the screen
SHOWN_ID_DIGITS = 16
SHOWN_TITLE_CHARS = 60


def tree_lines(node: dict[str, Any], prefix: str = "", last: bool = True, root: bool = True) -> Iterator[str]:
    """The gettask tree as box-drawn lines, in tree order: `1.2 title [state]`."""
    title = " ".join(node["task"].split())[:SHOWN_TITLE_CHARS]
    label = f"{node['node']} " if node["node"] else ""
    branch = "" if root else ("└─ " if last else "├─ ")
    yield f"{prefix}{branch}{label}{title} [{node['state']}]"
    below = prefix if root else prefix + ("   " if last else "│  ")
    children = node["children"]
    for i, child in enumerate(children):
        yield from tree_lines(child, below, i == len(children) - 1, False)


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node["children"]:
        yield from _walk(child)


class TaskProgress:
    """Call `show(gettask result)` on every poll and `finish()` once; writes to `stream`."""

    def __init__(self, stream: TextIO, tty: bool, clock: Callable[[], float] = time.time) -> None:
        self._stream = stream
        self._tty = tty
        self._clock = clock  # UNIX seconds, as gettask's times
        self._drawn = 0  # lines on screen (terminal)
        self._states: dict[str, str] = {}  # node number -> state last printed (not a terminal)

    def show(self, info: dict[str, Any]) -> None:
        label = f"task {info['taskid'][:SHOWN_ID_DIGITS]}"
        if self._tty:
            ended = info["finished"] if info["finished"] is not None else self._clock()
            header = f"{label}: {info['state']}, {info['jobs']} jobs, {ended - info['created']:.1f} s"
            width = shutil.get_terminal_size().columns
            lines = [header, *tree_lines(info["tree"])]
            up = UP_AND_ERASE.format(lines=self._drawn) if self._drawn else ""
            self._stream.write(up + "".join(line[: width - 1] + "\n" for line in lines))
            self._drawn = len(lines)
        else:
            for node in _walk(info["tree"]):
                number = node["node"] or "root"
                if self._states.get(number) != node["state"]:
                    self._states[number] = node["state"]
                    title = " ".join(node["task"].split())[:SHOWN_TITLE_CHARS]
                    self._stream.write(f"{label} {number} {title}: {node['state']}\n")
        self._stream.flush()
