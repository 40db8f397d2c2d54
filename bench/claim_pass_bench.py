"""A compute node's look for work at 4,000 waiting jobs: the old walk of the pool against the claim queue (issue 15).

The jobs wait for their escrows' confirmations (a policy asking one, against 0-conf escrows: what a job
flood looks like), so a look sets each candidate aside and chooses again until none is left, as
JobComputer._next_claim does. The old look walked the pool for each choice, skipping the jobs it had set
aside in that look, and started afresh at the next look; the queue drops the set-aside jobs from its walk
until a block. Both are timed in this process on the same signed jobs: the first look after the jobs
arrived, and the steady state, a look after one more job arrives (every job, transaction and recheck
wakes a look). Only the scheduling is timed: the escrow look-ups on the chain thread are left out, and
cost both the same per job looked at.

    .venv/bin/python -m bench.claim_pass_bench [--jobs 4000] [--repeats 5]    (from the repository root)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from camelid.chain.jobpool import JobPool, JobRecord, job_offer_digest
from camelid.core.job import JobParams
from camelid.core.private_prompt import LengthUnit
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.claim_queue import ClaimQueue
from camelid.node.jobs.scheduler import JobScheduler

MODEL = b"\x01" * 32
CLIENT = PrivateKey.from_bytes(b"\x11" * 32)
CLIENT_NODE = PrivateKey.from_bytes(b"\x44" * 32).public_key.to_bytes()
ME = PrivateKey.from_bytes(b"\x22" * 32).public_key.to_bytes()


def add_job(pool: JobPool, i: int, now: int) -> JobRecord:
    commitment = i.to_bytes(32, "little")
    job = JobParams(MODEL, commitment, 8, LengthUnit.BYTES, 64, i, 0, now, 600, CLIENT.public_key.to_bytes(), "", 9733)
    escrow = i.to_bytes(32, "little")
    signature = CLIENT.sign(job_offer_digest(job.job_id(), escrow, CLIENT_NODE))
    record = pool.add_job(job.to_bytes(), escrow, CLIENT_NODE, signature)
    assert record is not None
    return record


def pay(record: JobRecord) -> float:
    return record.params.seed % 7 + 1.0  # rewards per token spread over a few values, as a market's are


def walk_look(pool: JobPool, scheduler: JobScheduler, now: float) -> int:
    """The old look: choose over the whole pool, set the choice aside for this look only, until none is left."""
    aside: set[bytes] = set()
    while (choice := scheduler.choose((r for r in pool.jobs() if r.job_id not in aside), now, pay)) is not None:
        aside.add(choice.job_id)
    return len(aside)


def queue_look(queue: ClaimQueue, now: float) -> int:
    """The queue's look: each job set aside leaves the walk until a block."""
    count = 0
    while (choice := queue.choose(now, pay)) is not None:
        queue.set_aside(choice, until_block=True)
        count += 1
    return count


def timed(run: Callable[[], int], expected: int) -> float:
    start = time.perf_counter()
    looked = run()
    seconds = time.perf_counter() - start
    assert looked == expected, (looked, expected)
    return seconds


def repeat(pool: JobPool, now: int, newcomer: int) -> dict[str, float]:
    """One fresh node looking at the pool's jobs, then at one more: seconds by (look, way)."""
    scheduler = JobScheduler(ME, lambda model_id: model_id == MODEL)
    queue = ClaimQueue(scheduler)
    for record in pool.jobs():
        queue.add(record, now)  # as each job was offered on arrival
    times = {
        "first walk": timed(lambda: walk_look(pool, scheduler, now), len(pool)),
        "first queue": timed(lambda: queue_look(queue, now), len(pool)),
    }
    queue.add(add_job(pool, newcomer, now), now)
    times["steady walk"] = timed(lambda: walk_look(pool, scheduler, now), len(pool))
    times["steady queue"] = timed(lambda: queue_look(queue, now), 1)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    now = int(time.time())
    pool = JobPool(3600, clock=lambda: now)
    for i in range(args.jobs):
        add_job(pool, i, now)
    runs = [repeat(pool, now, args.jobs + i) for i in range(args.repeats)]  # the pool grows by one a repeat
    for look in ("first", "steady"):
        walk = statistics.median(run[f"{look} walk"] for run in runs) * 1e3
        queued = statistics.median(run[f"{look} queue"] for run in runs) * 1e3
        name = "first look" if look == "first" else "steady state"
        print(f"claim look, {args.jobs} waiting jobs, {name}: walk {walk:.1f} ms, queue {queued:.3f} ms, "
              f"ratio {walk / queued:.0f} (medians of {args.repeats})")


if __name__ == "__main__":
    main()
