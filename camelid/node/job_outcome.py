"""When waiting for one of our jobs is over, and why it gave no verified output: the /v1 API, waitforjob,
`camelid-cli complete` and the task service (a fractal task's nodes) judge a getjob record the same way."""

from __future__ import annotations

from typing import Any

from camelid.chain.jobpool import JobState
from camelid.core.amounts import amount

ENDED = frozenset(
    {
        JobState.VERIFIED,
        JobState.DISPUTED,
        JobState.SLASHED,
        JobState.REFUNDED,
        JobState.EXPIRED,
        JobState.CANCELLED,
    }
)
"""States after which a client's job gets no verdict that it does not have yet."""


def stopped_waiting(info: dict[str, Any]) -> bool:
    """True once a job has a verdict or has ended: nothing more will come of waiting for it.

    A settled job (its payment mined) has not ended for its client: the delivery may come after it. A job
    nobody took by its take-by time (`untaken`) will not be taken.
    """
    return info.get("verdict") is not None or info["state"] in ENDED or info.get("untaken") is not None


def wake_by(info: dict[str, Any], left: float, now: float) -> float:
    """Seconds to wait for the job's next change: at most `left`, and no later than its take-by time, when
    an untaken job is reported without any change to wake the waiter."""
    take_by = info.get("take_by")
    if take_by is None or info.get("accepted_by") or take_by <= now:
        return left
    return min(left, take_by - now + 0.01)


def failure(info: dict[str, Any]) -> str | None:
    """Why a finished wait gave no verified output (the verdict, or the state the job ended in); None if it did."""
    if info.get("verdict") == "verified":
        if info.get("text") is not None:
            return None
        return "verified, but this node lacks the model file to read its tokens (getjob shows them)"
    if info.get("untaken") is not None:
        untaken = info["untaken"]
        return (
            f"no node took it for {amount(untaken['offered'])} coins by its deadline; the going reward "
            f"is {amount(untaken['going_reward'])} coins (estimatejobreward)"
        )
    return info.get("verdict") or f"ended {info['state']} without a delivered output"
