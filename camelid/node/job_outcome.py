"""When waiting for one of our jobs is over, and why it gave no verified output: the /v1 API, waitforjob,
`camelid-cli complete` and the task service (a fractal task's nodes) judge a getjob record the same way."""

from __future__ import annotations

from typing import Any

from camelid.chain.jobpool import JobState

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

    A settled job (its payment mined) has not ended for its client: the delivery may come after it.
    """
    return info.get("verdict") is not None or info["state"] in ENDED


def failure(info: dict[str, Any]) -> str | None:
    """Why a finished wait gave no verified output (the verdict, or the state the job ended in); None if it did."""
    if info.get("verdict") == "verified" and info.get("text") is not None:
        return None
    return info.get("verdict") or f"ended {info['state']} without a delivered output"
