"""`camelid-cli fractal GOAL`: break a goal into a tree of paid, verified jobs (whitepaper 5.4) and print the result.

    camelid-cli [connection options] fractal GOAL [--depth D] [--fanout F] [--max-tokens N]
        [--reward COINS] [--max-total-reward COINS] [--model ID] [--timeout SECONDS]

The task is submitted with submittask and followed with gettask, its tree drawn on stderr with each node's
live state (redrawn in place on a terminal, a line per change elsewhere). The assembled document goes to
stdout; it holds only verified text (a node that failed is marked in place). The exit status is 0 when every
node was verified, 1 otherwise, so scripts can tell a partial document from a whole one.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from camelid.cli.task_progress import TaskProgress
from camelid.core.job import MAX_JOB_TOKENS
from camelid.node.tasks import MAX_DEPTH, MAX_FANOUT, VERIFIED
from camelid.rpc.client import RPCClient

COMMAND = "fractal"
POLL = 0.5
"""Seconds between gettask calls."""
DEFAULT_TIMEOUT = 3600


@click.command(COMMAND, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("goal")
@click.option("--depth", type=click.IntRange(0, MAX_DEPTH), default=2, show_default=True, help="Levels below the goal.")
@click.option("--fanout", type=click.IntRange(1, MAX_FANOUT), default=3, show_default=True, help="Subtasks per node.")
@click.option("--max-tokens", type=click.IntRange(1, MAX_JOB_TOKENS), default=64, show_default=True, help="Per job.")
@click.option("--reward", default="0.01", show_default=True, help="Coins paid for each job.")
@click.option("--max-total-reward", help="Coins the whole tree may cost at most (default: its worst case).")
@click.option("--model", help="Model id (default: one this node or a peer serves).")
@click.option("--timeout", type=click.IntRange(min=1), default=DEFAULT_TIMEOUT, show_default=True, help="Seconds.")
def fractal_command(**options: Any) -> dict[str, Any]:
    """Break GOAL into a tree of verified jobs computed in parallel."""
    return options


def submittask_params(args: tuple[str, ...]) -> tuple[dict[str, Any], float]:
    """(submittask's named arguments, seconds to wait) from the words after `fractal`; click errors for bad ones."""
    with fractal_command.make_context(f"camelid-cli {COMMAND}", list(args)) as ctx:
        options = fractal_command.invoke(ctx)
    goal, timeout = options.pop("goal"), options.pop("timeout")
    options["reward_per_job"] = options.pop("reward")
    return {"goal": goal, "options": {k: v for k, v in options.items() if v is not None}}, timeout


def follow_task(client: RPCClient, task_id: str, timeout: float) -> None:
    """Draw the tree until the task finishes; print its document, and exit 1 unless every node was verified."""
    stderr = click.get_text_stream("stderr")
    progress = TaskProgress(stderr, stderr.isatty())
    deadline = time.monotonic() + timeout
    while True:
        info = client.call("gettask", task_id)
        progress.show(info)
        if info["state"] != "running":
            break
        if time.monotonic() >= deadline:
            click.echo(f"task {task_id} is still running after {timeout:.0f} s; follow it with gettask", err=True)
            sys.exit(1)
        time.sleep(POLL)
    click.echo(info["document"], nl=False)
    unverified = {state: n for state, n in info["counts"].items() if state != VERIFIED}
    if unverified:
        shown = ", ".join(f"{n} {state}" for state, n in sorted(unverified.items()))
        click.echo(f"task {task_id}: not every node was verified ({shown})", err=True)
        sys.exit(1)
