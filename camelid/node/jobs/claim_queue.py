"""The jobs a compute node may yet take, so that a look for work does not walk the job pool (issue 15).

A serving node looks for work after every job, block, transaction it waits for and claim that runs out.
Walking the pool at each look cost 0.84 s at 4,000 jobs, every 50 ms. ClaimQueue holds the jobs still
open to this node in pool order:

- a job closed to the node for good (`JobScheduler.closed`: taken, declined, ours, past the time to take
  it, a testament whose stake showed) leaves the queue the first time a look passes it; one the pool
  drops leaves it at once (`discard`);
- a job whose escrow is not here yet is set aside until the next look after a transaction or timer
  wakes the node, one whose escrow lacks confirmations until a block, and one for a model the node does
  not serve until a block too (a fetched model can make it servable);
- the rest (open, held by another node's fresh claim, or with a testament whose stake is not checked
  yet) stay, and JobScheduler.choose judges them at each look as it judged the whole pool before.

A look so passes the jobs other nodes hold, those it drops, and at most MAX_CANDIDATES open ones; a job
enters or comes back by a bisection on its arrival number.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from camelid.chain.jobpool import JobRecord
from camelid.node.jobs.scheduler import JobScheduler


class ClaimQueue:
    """The jobs this node may yet take, oldest first, and those set aside until a transaction or a block."""

    def __init__(self, scheduler: JobScheduler) -> None:
        self._scheduler = scheduler
        self._arrivals = 0
        self._jobs: dict[bytes, tuple[int, JobRecord]] = {}  # queued and set aside: (arrival number, record)
        self._order: list[tuple[int, bytes]] = []  # the queued ones' (arrival number, Job ID), ascending
        self._until_tx: set[bytes] = set()
        self._until_block: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._jobs)

    def jobs(self) -> Iterator[JobRecord]:
        """The queued jobs, oldest first (not those set aside)."""
        return (self._jobs[job_id][1] for _, job_id in self._order)

    def add(self, record: JobRecord, now: float) -> None:
        """Queue a job that reached the pool (after every job queued before it), unless closed to us already."""
        if record.job_id not in self._jobs and not self._scheduler.closed(record, now):
            self._jobs[record.job_id] = (self._arrivals, record)
            self._order.append((self._arrivals, record.job_id))
            self._arrivals += 1

    def choose(self, now: float, pay: Callable[[JobRecord], float] | None = None) -> JobRecord | None:
        """JobScheduler.choose over the queue: the jobs it finds closed on the way leave the queue, those for a
        model we do not serve wait for the next block."""
        scheduler = self._scheduler
        passed, closed, unserved = 0, [], []

        def walk() -> Iterator[JobRecord]:
            nonlocal passed
            for key in self._order:
                passed += 1
                record = self._jobs[key[1]][1]
                if scheduler.closed(record, now):
                    scheduler.rival_in(record)  # a job leaving the queue may be the first sign of a rival
                    closed.append(key)
                elif not scheduler.serves(record.params.model_id):
                    unserved.append(key)
                else:
                    yield record

        candidates = walk()
        choice = scheduler.choose(candidates, now, pay)
        candidates.close()
        if closed or unserved:
            leaving = set(closed + unserved)
            self._order[:passed] = [key for key in self._order[:passed] if key not in leaving]
            for _, job_id in closed:
                del self._jobs[job_id]
            self._until_block.update(job_id for _, job_id in unserved)
        return choice

    def set_aside(self, record: JobRecord, until_block: bool) -> None:
        """Leave a queued job out of looks until `take_back` (of a block with `until_block`, else any); nothing
        if the pool dropped it meanwhile."""
        entry = self._jobs.get(record.job_id)
        if entry is None:
            return
        del self._order[bisect.bisect_left(self._order, (entry[0], record.job_id))]
        (self._until_block if until_block else self._until_tx).add(record.job_id)

    def waiting_for_tx(self) -> bool:
        """Whether a job waits for its escrow to show (the compute side looks again soon)."""
        return bool(self._until_tx)

    def take_back(self, block: bool) -> None:
        """Queue again, in their places, the jobs set aside until a transaction, and with `block` those set
        aside until a block."""
        returning = self._until_tx | self._until_block if block else self._until_tx
        for job_id in returning:
            bisect.insort(self._order, (self._jobs[job_id][0], job_id))
        self._until_tx = set()
        if block:
            self._until_block = set()

    def discard(self, job_id: bytes) -> None:
        """The pool dropped a job: forget it (the queue holds no more jobs than the pool)."""
        entry = self._jobs.pop(job_id, None)
        if entry is None:
            return
        if job_id in self._until_tx or job_id in self._until_block:
            self._until_tx.discard(job_id)
            self._until_block.discard(job_id)
        else:
            del self._order[bisect.bisect_left(self._order, (entry[0], job_id))]
