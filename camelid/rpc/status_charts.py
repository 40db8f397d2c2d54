"""The series behind the status page's charts: recent block intervals, jobs per minute by outcome, job latency.

Computed here, from the block index and the job pool, so that the page only draws (small inline SVG, built
by its script with no library and no CDN). Jobs are judged from the pool's states, which every node
records: a verdict (verified, disputed, slashed) is only known on the client's node, so elsewhere a job
that got its output shows as `delivered`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from camelid.chain.blockindex import BlockIndexEntry
from camelid.chain.jobpool import JobRecord, JobState

BLOCKS_CHARTED = 30
MINUTES_CHARTED = 30
LATENCIES_CHARTED = 30
OUTCOMES = ("verified", "delivered", "disputed", "slashed", "open", "ended")
"""A job's outcome as charted, most telling first: the worst verdict reached wins over a delivery."""
_ENDED = frozenset({JobState.REFUNDED, JobState.EXPIRED, JobState.CANCELLED, JobState.SETTLED})


def block_intervals(tip: BlockIndexEntry, count: int = BLOCKS_CHARTED) -> list[dict[str, int]]:
    """Seconds between each of the last `count` blocks and its parent (by header time), oldest first."""
    intervals = []
    entry = tip
    while entry.prev is not None and len(intervals) < count:
        intervals.append({"height": entry.height, "seconds": entry.header.time - entry.prev.header.time})
        entry = entry.prev
    return intervals[::-1]


def outcome(record: JobRecord) -> str:
    """One of OUTCOMES for a job, from the states it reached."""
    for state, name in ((JobState.SLASHED, "slashed"), (JobState.DISPUTED, "disputed")):
        if record.reached(state):
            return name
    if record.reached(JobState.VERIFIED):
        return "verified"
    if record.reached(JobState.DELIVERED):
        return "delivered"
    return "ended" if record.state in _ENDED else "open"


def jobs_per_minute(records: Iterable[JobRecord], now: float, minutes: int = MINUTES_CHARTED) -> list[dict[str, Any]]:
    """Jobs created in each of the last `minutes` minutes (the last one is the current, partial minute),
    counted by outcome; oldest first, each with the minute's start time."""
    first = int(now // 60) - minutes + 1
    buckets = [{"minute": (first + i) * 60, **dict.fromkeys(OUTCOMES, 0)} for i in range(minutes)]
    for record in records:
        index = int(record.history[0][1] // 60) - first
        if 0 <= index < minutes:
            buckets[index][outcome(record)] += 1
    return buckets


def job_latencies(records: Iterable[JobRecord], count: int = LATENCIES_CHARTED) -> list[dict[str, Any]]:
    """Seconds from a job's arrival to its delivery, for the last `count` delivered jobs, oldest first."""
    latencies = []
    for record in records:
        delivered = next((at for state, at in record.history if state == JobState.DELIVERED), None)
        if delivered is not None:
            seconds = round(delivered - record.history[0][1], 3)
            latencies.append({"jobid": record.job_id[::-1].hex(), "seconds": seconds})
    return latencies[-count:]


def charts(intervals: list[dict[str, int]], records: list[JobRecord] | None, now: float) -> dict[str, Any]:
    """What status.json's `charts` holds (`intervals` from block_intervals, read on the chain's thread); the
    job series are null without a job service."""
    return {
        "block_intervals": intervals,
        "jobs_per_minute": None if records is None else jobs_per_minute(records, now),
        "job_latency": None if records is None else job_latencies(records),
        "outcomes": list(OUTCOMES),
    }
