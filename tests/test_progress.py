"""camelid.progress: redrawn in place on a terminal, plain throttled lines in logs and pipes."""

from __future__ import annotations

import io

from camelid.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_each_change_is_one_plain_line_and_repeats_are_dropped():
    log = io.StringIO()
    bar = Progress("mining", total=4, stream=log)
    bar.update(1)
    bar.update(1)
    bar.finish("height 4")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 2
    assert "[#######.......................] 1/4" in lines[0]
    assert lines[1].startswith("  mining  [##############################] 4/4") and lines[1].endswith("height 4")


def test_on_a_terminal_the_line_is_redrawn_in_place_and_ends_with_a_newline():
    screen = Terminal()
    spinner = Progress("waiting for the verdict", stream=screen)
    spinner.update(detail="a much longer detail than the final one")
    spinner.finish("verified")
    text = screen.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    last = text.split("\r")[-1]
    assert "verified" in last and "longer" not in last
    assert len(last.rstrip("\n")) == len(text.split("\r")[1])  # padded over the longer line it replaces
