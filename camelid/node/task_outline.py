"""The text side of task fractalization (whitepaper 5.4): the prompts a task's jobs run, the parser that reads an
outline job's list of subtasks, and the document a finished tree is assembled into.

Prompt format. Every job of a task is a plain completion (no chat template), so that a small base model can
follow it. A node above the task's depth runs an *outline* prompt:

    Goal: <the task's goal>
    Task: <this node's subtask, the goal itself at the root>
    Parent tasks: <the subtasks from the root down to this node's parent, " > "-separated; only below level 1>
    Break the task into at most <fanout> smaller subtasks, or answer it directly if it is simple.
    Write one subtask per line as a numbered list: 1. ... 2. ...
    Subtasks:

and a node at the task's depth runs a *leaf* prompt, the same first lines then:

    Do this task. Be concise.
    Answer:

Parsing (`parse_subtasks`) accepts what small models actually write: items numbered "1." "1)" "1:" "(1)" or
"Step 1:", bullets ("-", "*", "+", "•"), markdown bold around an item, numbers that skip or restart; it drops
empty, duplicate and letterless items and keeps at most `fanout`. An outline with no list at all (a model that
answered the task directly, or the tiny test model's byte-level gibberish) makes its node a leaf: the outline's
text is that node's answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_SUBTASK_CHARS = 200
"""A subtask longer than this is cut: it becomes part of a prompt, and a title line in the document."""

_ITEM = re.compile(
    r"""^\s*(?:
        (?:step\s*)?\(?\d{1,3}\s*[.):\]-]   # 1.  1)  1:  (1)  1]  1-  Step 1:
        | [-*+\u2022]                        # bullets
    )\s*(?P<item>.*)$""",
    re.IGNORECASE | re.VERBOSE,
)
_MARKUP = re.compile(r"[*_`#]+")


def _task_lines(goal: str, path: Sequence[str]) -> list[str]:
    lines = [f"Goal: {goal}", f"Task: {path[-1] if path else goal}"]
    if len(path) > 1:
        lines.append(f"Parent tasks: {' > '.join(path[:-1])}")
    return lines


def outline_prompt(goal: str, path: Sequence[str], fanout: int) -> str:
    """The prompt of a node above the depth: its subtasks as a numbered list. `path`: the subtasks from the root
    down to this node (empty at the root)."""
    return "\n".join(
        [
            *_task_lines(goal, path),
            f"Break the task into at most {fanout} smaller subtasks, or answer it directly if it is simple.",
            "Write one subtask per line as a numbered list: 1. ... 2. ...",
            "Subtasks:\n",
        ]
    )


def leaf_prompt(goal: str, path: Sequence[str]) -> str:
    """The prompt of a node at the depth: do the task itself."""
    return "\n".join([*_task_lines(goal, path), "Do this task. Be concise.", "Answer:"])


def parse_subtasks(text: str, fanout: int) -> list[str]:
    """The subtasks an outline lists, in its order, at most `fanout`; [] when it holds no list (a leaf)."""
    found: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        match = _ITEM.match(line)
        if match is None:
            continue
        item = " ".join(_MARKUP.sub("", match["item"]).split()).strip(" :;.-")[:MAX_SUBTASK_CHARS]
        key = item.casefold()
        if not any(ch.isalpha() for ch in item) or key in seen:
            continue
        seen.add(key)
        found.append(item)
        if len(found) == fanout:
            break
    return found
