"""The text side of task fractalization (whitepaper 5.4): the prompts a task's jobs run, the parser that reads an
outline job's list of subtasks, and the document a finished tree is assembled into.

Prompt format. Every job of a task is a plain completion (no chat template), written for what a small base
model does well: continue a pattern. A node above the task's depth runs an *outline* prompt, one worked
example and then the node's task, with the answer's first "1." already written (so the model continues a list
instead of copying the example):

    Break each task into at most <fanout> smaller subtasks, as a numbered list.

    Task: Make a cup of tea
    Subtasks:
    1. Boil water
    2. Put a tea bag in a cup
    3. Pour the water and let it steep

    Task: <this node's subtask; the goal at the root>
    Part of: <the goal > the subtasks down to this node's parent; absent at the root>
    Subtasks:
    1.

A node at the task's depth runs a *leaf* prompt: its `Task:` and `Part of:` lines, then
`Here is how to do it, in a few sentences:` and a newline.

Parsing (`read_outline`) puts the "1." back in front of the output and accepts what small models write: items
numbered "1." "1)" "1:" "(1)" or "Step 1:", bullets ("-", "*", "+", "•"), markdown bold, numbers that skip or
restart, indented continuation lines (skipped). The list ends at the first other line once it has begun (a
model that goes on to invent a next task). Unprintable characters are removed; items without two letters in a
row, duplicates and the node's own task repeated are dropped; at most `fanout` are kept. An outline with no item
left (gibberish, such as the tiny test model's bytes, or the task said again) makes its node a leaf: the
outline's text is that node's answer.
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
_WORD = re.compile(r"[^\W\d_]{2}")
"""An item needs two letters in a row: a subtask is words, not a stray byte."""


OUTLINE_PRIMER = "1."
"""The start of the answer an outline prompt writes itself."""
EXAMPLE = (
    "Task: Make a cup of tea\nSubtasks:\n1. Boil water\n2. Put a tea bag in a cup\n3. Pour the water and let it steep\n"
)


def _task_lines(goal: str, path: Sequence[str]) -> list[str]:
    """`path`: the subtasks from the root down to this node (empty at the root)."""
    if not path:
        return [f"Task: {goal}"]
    return [f"Task: {path[-1]}", f"Part of: {' > '.join([goal, *path[:-1]])}"]


def outline_prompt(goal: str, path: Sequence[str], fanout: int) -> str:
    """The prompt of a node above the depth: its subtasks as a numbered list, the first "1." written."""
    head = f"Break each task into at most {fanout} smaller subtasks, as a numbered list."
    return "\n".join([head, "", EXAMPLE, *_task_lines(goal, path), "Subtasks:", OUTLINE_PRIMER])


def leaf_prompt(goal: str, path: Sequence[str]) -> str:
    """The prompt of a node at the depth: do the task itself."""
    return "\n".join([*_task_lines(goal, path), "Here is how to do it, in a few sentences:", ""])


def read_outline(output: str, fanout: int, task: str) -> list[str]:
    """The subtasks an outline job's output lists, in its order, at most `fanout`; [] when none (a leaf)."""
    found: list[str] = []
    seen = {" ".join(task.split()).casefold()}
    for line in (OUTLINE_PRIMER + output).splitlines():
        match = _ITEM.match(line)
        if match is None:
            if found and line.strip() and not line[0].isspace():
                break  # the list is over: what follows is no subtask
            continue
        printable = "".join(ch for ch in _MARKUP.sub("", match["item"]) if ch.isprintable())
        item = " ".join(printable.split()).strip(" :;.-")[:MAX_SUBTASK_CHARS]
        key = item.casefold()
        if _WORD.search(item) is None or key in seen:
            continue
        seen.add(key)
        found.append(item)
        if len(found) == fanout:
            break
    return found
