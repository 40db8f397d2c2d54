"""`camelid-cli complete PROMPT --max-tokens N`: buy one verified completion from the network.

    camelid-cli [connection options] complete PROMPT --max-tokens N
        [--model ID] [--temperature T] [--seed S] [--reward COINS | --max-reward COINS] [--timeout SECONDS]

The job is submitted with submitjob (so the defaults are submitjob's: greedy, seed 0, and the market's
estimate of a reward likely to be taken, as estimatejobreward, capped at --max-reward) and followed
with waitforjob (a long poll that returns when the job changes), its states drawn on stderr. The verified
text goes to stdout and the exit status is 0; a job that ends unverified prints its verdict (or the state it
ended in) on stderr and exits 1, so scripts can rely on stdout holding only checked output.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from camelid.cli.job_progress import JobProgress
from camelid.core.job import MAX_JOB_TOKENS
from camelid.node.job_outcome import failure, stopped_waiting
from camelid.node.jobs import DEFAULT_TIMELOCK
from camelid.rpc.client import RPCClient

COMMAND = "complete"
LONG_POLL = 30
"""Seconds one waitforjob call may wait for the job to change (the call returns at once when it does)."""
REDRAW = 1
"""On a terminal, the clock on the progress line is redrawn this often while nothing changes."""


@click.command(COMMAND, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("prompt")
@click.option("--max-tokens", required=True, type=click.IntRange(1, MAX_JOB_TOKENS), help="Most tokens to generate.")
@click.option("--model", help="Model id (default: one this node or a peer serves).")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0, show_default=True, help="0 is greedy.")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True, help="Sampling seed.")
@click.option("--reward", help="Coins paid to the node that computes it (default: the market's estimate).")
@click.option("--max-reward", help="Most coins the default reward may be.")
@click.option(
    "--timeout", type=click.IntRange(min=1), default=DEFAULT_TIMELOCK + 60, show_default=True, help="Seconds to wait."
)
def complete_command(**options: Any) -> dict[str, Any]:
    """Buy a verified completion of PROMPT."""
    return options


def submitjob_params(args: tuple[str, ...]) -> tuple[dict[str, Any], float]:
    """(submitjob's named arguments, seconds to wait) from the words after `complete`; click errors for bad ones."""
    with complete_command.make_context(f"camelid-cli {COMMAND}", list(args)) as ctx:
        options = complete_command.invoke(ctx)
    timeout = options.pop("timeout")
    return options, timeout


def follow_job(client: RPCClient, job_id: str, timeout: float) -> None:
    """Draw the job's progress until it has a verdict or ends; print the verified text, or exit 1."""
    stderr = click.get_text_stream("stderr")
    progress = JobProgress(job_id, stderr, stderr.isatty())
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        wait = max(0.0, min(REDRAW if stderr.isatty() else LONG_POLL, deadline - time.monotonic()))
        info = client.call("waitforjob", job_id, seen, wait)
        seen = len(info["history"])
        progress.show([(entry["state"], entry["time"]) for entry in info["history"]])
        if stopped_waiting(info):
            break
        if time.monotonic() >= deadline:
            progress.finish()
            click.echo(f"job {job_id} is still {info['state']} after {timeout:.0f} s; follow it with getjob", err=True)
            sys.exit(1)
    progress.finish()
    why = failure(info)
    if why is None:
        click.echo(info["text"])
        return
    click.echo(f"job {job_id} was not verified: {why}", err=True)
    sys.exit(1)
