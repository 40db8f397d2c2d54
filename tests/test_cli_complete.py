"""`camelid-cli complete`: its arguments as submitjob's, and the progress it draws on stderr."""

from __future__ import annotations

import io

import click
import pytest

from camelid.cli.complete import submitjob_params
from camelid.cli.job_progress import ERASE_LINE, JobProgress
from camelid.node.jobs import DEFAULT_TIMELOCK

JOB = "c30f5c8915c099711dabcac96d19d1e8e517575e884bdf329adc57c9cb7861a7"


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_arguments_become_submitjobs_named_parameters():
    params, timeout = submitjob_params(("The llama", "--max-tokens", "8", "--temperature", "0.5", "--reward", "0.1"))
    assert params == {
        "prompt": "The llama",
        "max_tokens": 8,
        "model": None,
        "temperature": 0.5,
        "seed": 0,
        "reward": "0.1",
        "max_reward": None,
    }
    assert timeout == DEFAULT_TIMELOCK + 60
    params, _ = submitjob_params(("llamas", "--max-tokens", "8", "--max-reward", "0.2"))
    assert (params["reward"], params["max_reward"]) == (None, "0.2")  # submitjob's estimate, capped


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("llamas",), "--max-tokens"),
        (("llamas", "--max-tokens", "0"), "--max-tokens"),
        (("llamas", "--max-tokens", "5000"), "--max-tokens"),
        (("llamas", "--max-tokens", "4", "--temperature", "3"), "--temperature"),
        (("llamas", "--max-tokens", "4", "--seed", "-1"), "--seed"),
        (("--max-tokens", "4"), "PROMPT"),
    ],
)
def test_bad_arguments_are_usage_errors_naming_the_option(args, named):
    with pytest.raises(click.UsageError) as bad:
        submitjob_params(args)
    assert f"'{named}'" in bad.value.format_message()


def test_off_a_terminal_each_state_reached_gets_a_line_with_its_time():
    out = io.StringIO()
    progress = JobProgress(JOB, out, tty=False, clock=Clock())
    progress.show([("created", 90.0)])
    progress.show([("created", 90.0)])
    progress.show([("created", 90.0), ("accepted", 92.5), ("completed", 93.0)])  # states between polls show too
    progress.finish()
    assert out.getvalue() == (
        "job c30f5c8915c09971: created after 0.0 s\n"
        "job c30f5c8915c09971: accepted after 2.5 s\n"
        "job c30f5c8915c09971: completed after 3.0 s\n"
    )


def test_on_a_terminal_one_line_is_redrawn_with_the_states_so_far():
    out, clock = io.StringIO(), Clock()
    progress = JobProgress(JOB, out, tty=True, clock=clock)
    progress.show([("created", 100.0)])
    clock.now += 1.25
    progress.show([("created", 100.0)])
    clock.now += 1
    progress.show([("created", 100.0), ("paid", 101.0), ("verified", 102.0)])
    progress.finish()
    assert out.getvalue().split(ERASE_LINE)[1:] == [
        "job c30f5c8915c09971: created (0.0 s)",
        "job c30f5c8915c09971: created (1.2 s)",
        "job c30f5c8915c09971: created > paid > verified (2.2 s)\n",
    ]
