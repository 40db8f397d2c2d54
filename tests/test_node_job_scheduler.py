"""Which pool job a free compute node takes: open jobs only, oldest first by rank, others' claims honoured;
the claim queue chooses as a walk of the pool would, without walking it."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace

import pytest
from prompt_support import hidden

from camelid.chain.jobpool import (
    MAX_ACCEPTS_PER_JOB,
    JobPool,
    JobRecord,
    JobState,
    TestamentRecord,
    job_accept_digest,
    job_offer_digest,
)
from camelid.core.job import JobParams
from camelid.core.jobscripts import commitment_signature_digest
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.claim_queue import ClaimQueue
from camelid.node.jobs.scheduler import (
    CLAIM_SPREAD,
    HOLD_SLACK,
    MAX_CANDIDATES,
    MAX_HOLDING_ACCEPTS,
    JobScheduler,
    patience,
)

T0 = 1_800_000_000
SERVED = b"\x01" * 32
OTHER_MODEL = b"\x02" * 32
CLIENT = PrivateKey.from_bytes(b"\x11" * 32)
CLIENT_NODE = PrivateKey.from_bytes(b"\x44" * 32).public_key.to_bytes()
ME = PrivateKey.from_bytes(b"\x22" * 32).public_key.to_bytes()
RIVAL = PrivateKey.from_bytes(b"\x33" * 32)
THIRD = PrivateKey.from_bytes(b"\x55" * 32)
MAX_TOKENS = 8


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pool(clock) -> JobPool:
    return JobPool(5, clock=clock)


def scheduler(node_id: bytes = ME) -> JobScheduler:
    return JobScheduler(node_id, lambda model_id: model_id == SERVED)


def add_job(
    pool: JobPool, prompt: str = "llamas", model: bytes = SERVED, timelock: int = 600, client_node: bytes = CLIENT_NODE
) -> JobRecord:
    job = JobParams(model, *hidden(prompt), MAX_TOKENS, 0, 0, T0, timelock, CLIENT.public_key.to_bytes(), "", 9733)
    signature = CLIENT.sign(job_offer_digest(job.job_id(), b"\x66" * 32, client_node))
    record = pool.add_job(job.to_bytes(), b"\x66" * 32, client_node, signature)
    assert record is not None
    return record


def accept(pool: JobPool, record: JobRecord, node: PrivateKey) -> None:
    node_id = node.public_key.to_bytes()
    assert pool.add_accept(record.job_id, node_id, node.sign(job_accept_digest(record.job_id, node_id)))


def test_a_fresh_job_for_a_served_model_is_open_and_others_are_not(pool, clock):
    mine = scheduler()
    fresh = add_job(pool, "fresh")
    assert mine.is_open(fresh, clock.now)
    assert not mine.is_open(add_job(pool, "other model", model=OTHER_MODEL), clock.now)
    assert not mine.is_open(add_job(pool, "our own", client_node=ME), clock.now)
    assert not mine.is_open(add_job(pool, "due in 3 s", timelock=3), clock.now)  # patience(8) is 4.8 s
    tried = add_job(pool, "tried before")
    mine.tried.add(tried.job_id)
    assert not mine.is_open(tried, clock.now)
    done = add_job(pool, "done")
    add_testament(pool, done, RIVAL)
    assert not mine.is_open(done, clock.now)


def add_testament(pool: JobPool, record: JobRecord, node: PrivateKey) -> None:
    key = PrivateKey.from_bytes(b"\x77" * 32)
    signature = key.sign(commitment_signature_digest(b"\x88" * 32))
    testament = TestamentRecord(
        node.public_key.to_bytes(), key.public_key.to_bytes(), b"\x88" * 32, signature, b"\x99" * 32
    )
    signed = replace(testament, node_signature=node.sign(testament.digest(record.job_id)))
    assert pool.add_testament(record.job_id, signed)


def test_a_testament_whose_stake_never_showed_leaves_the_job_open(pool, clock):
    """A testament under a fresh node key is free; the compute side marks one without a stake `unbacked`."""
    mine = scheduler()
    record = add_job(pool)
    add_testament(pool, record, RIVAL)
    assert not mine.is_open(record, clock.now)
    mine.unbacked.add((record.job_id, RIVAL.public_key.to_bytes()))
    assert mine.is_open(record, clock.now)
    add_testament(pool, record, THIRD)  # a second testament, not yet found unbacked, closes it again
    assert not mine.is_open(record, clock.now)
    mine.forget([])
    assert not mine.unbacked


def test_throwaway_accepts_delay_a_job_but_cannot_starve_it(pool, clock):
    """Node ids cost nothing: sixteen accepts once held a 4,096-token job eleven times past its deadline."""
    mine = scheduler()
    record = add_job(pool, timelock=60)
    for i in range(MAX_ACCEPTS_PER_JOB):
        accept(pool, record, PrivateKey.from_bytes(bytes([0x60 + i]) * 32))
    wait = patience(MAX_TOKENS)
    reopens = T0 + MAX_HOLDING_ACCEPTS * wait
    assert mine.next_reopening(pool.jobs(), clock.now) == reopens
    assert not mine.is_open(record, reopens - 0.1) and mine.is_open(record, reopens)
    short = add_job(pool, "short", timelock=2 * int(wait) + 4)
    for i in range(2):
        accept(pool, short, PrivateKey.from_bytes(bytes([0x70 + i]) * 32))
    last_chance = T0 + short.params.timelock - wait - HOLD_SLACK
    assert mine.next_reopening([short], clock.now) == last_chance
    assert mine.is_open(short, last_chance)


def test_a_job_a_rival_accepted_opens_again_once_each_accepter_has_run_out_of_patience(pool, clock):
    mine = scheduler()
    record = add_job(pool)
    accept(pool, record, RIVAL)
    wait = patience(MAX_TOKENS)
    assert not mine.is_open(record, clock.now + wait - 0.1)
    assert mine.next_reopening(pool.jobs(), clock.now) == T0 + wait
    assert mine.is_open(record, clock.now + wait)
    clock.now += wait
    accept(pool, record, THIRD)  # took it when the rival ran out: it gets its own patience
    assert not mine.is_open(record, T0 + 2 * wait - 0.1)
    assert mine.next_reopening(pool.jobs(), clock.now) == T0 + 2 * wait
    assert mine.is_open(record, T0 + 2 * wait)
    assert mine.next_reopening(pool.jobs(), T0 + 2 * wait) is None


def test_a_job_too_close_to_its_deadline_is_left_alone(pool, clock):
    record = add_job(pool, timelock=10)
    assert scheduler().is_open(record, T0 + 10 - patience(MAX_TOKENS))
    assert not scheduler().is_open(record, T0 + 10 - patience(MAX_TOKENS) + 0.1)


def test_a_node_chooses_the_best_ranked_of_the_oldest_open_jobs(pool, clock):
    mine = scheduler()
    records = [add_job(pool, f"job {i}") for i in range(3 * MAX_CANDIDATES)]
    oldest = records[:MAX_CANDIDATES]
    assert mine.choose(pool.jobs(), clock.now) is min(oldest, key=lambda r: mine.rank(r.job_id))
    mine.tried.update(r.job_id for r in oldest)
    assert mine.choose(pool.jobs(), clock.now) is min(
        records[MAX_CANDIDATES : 2 * MAX_CANDIDATES], key=lambda r: mine.rank(r.job_id)
    )
    mine.tried.update(r.job_id for r in records)
    assert mine.choose(pool.jobs(), clock.now) is None
    mine.forget(r.job_id for r in records[:2])
    assert mine.tried == {r.job_id for r in records[:2]}


def test_ranks_are_fixed_per_node_and_job_and_spread_nodes_apart(pool):
    jobs = [add_job(pool, f"job {i}").job_id for i in range(200)]
    rivals_job = add_job(pool, "claimed by someone else")
    accept(pool, rivals_job, THIRD)
    node_ids = [PrivateKey.from_bytes(bytes([i]) * 32).public_key.to_bytes() for i in range(1, 5)]
    nodes = [scheduler(node_id) for node_id in node_ids]
    assert [nodes[0].rank(j) for j in jobs] == [scheduler(node_ids[0]).rank(j) for j in jobs]
    for node in nodes:
        node.claim_delay(jobs[0], [])  # nobody else seen yet: no delay
    assert all(0 <= node.claim_delay(j, [rivals_job]) < CLAIM_SPREAD for node in nodes for j in jobs)
    # Each node ranks first for about a quarter of the jobs: the first claims spread evenly over the nodes.
    firsts = [min(range(4), key=lambda n, j=j: nodes[n].rank(j)) for j in jobs]
    assert all(30 <= firsts.count(n) <= 70 for n in range(4))
    # Two nodes' delays for the same job lie CLAIM_SPREAD / 3 apart on average (uniform ranks).
    gaps = [abs(nodes[0].claim_delay(j, []) - nodes[1].claim_delay(j, [])) for j in jobs]
    assert CLAIM_SPREAD / 4 < statistics.mean(gaps) < CLAIM_SPREAD / 2.4


def test_a_job_is_open_again_once_its_accepter_ran_out_of_patience(pool, clock):
    record = add_job(pool)
    accept(pool, record, RIVAL)
    mine = scheduler()
    assert not mine.is_open(record, clock.now)
    clock.now += patience(MAX_TOKENS)
    assert mine.is_open(record, clock.now)
    mine.claim(record)
    assert record.job_id in mine.tried
    mine.forget([])
    assert not mine.tried


def test_a_node_that_has_never_seen_a_rival_claims_at_once(pool):
    """Alone on a model there is nobody to spread apart from: the claim delay would only be latency."""
    mine = scheduler()
    record = add_job(pool)
    assert mine.claim_delay(record.job_id, pool.jobs()) == 0.0
    elsewhere = add_job(pool, "another model", model=OTHER_MODEL)
    accept(pool, elsewhere, RIVAL)  # a rival for a model we do not serve competes with nobody here
    assert mine.claim_delay(record.job_id, pool.jobs()) == 0.0
    accept(pool, add_job(pool, "taken"), RIVAL)
    assert mine.claim_delay(record.job_id, pool.jobs()) == mine.rank(record.job_id) * CLAIM_SPREAD > 0
    assert mine.claim_delay(record.job_id, []) > 0  # once seen, remembered


def test_a_node_takes_the_best_paying_open_job_first_then_the_best_ranked(pool, clock):
    mine = scheduler()
    records = [add_job(pool, f"job {i}") for i in range(4)]
    rewards = {records[0].job_id: 10, records[1].job_id: 30, records[2].job_id: 30}
    rate = {r.job_id: rewards.get(r.job_id, 0) / MAX_TOKENS for r in records}
    best = mine.choose(pool.jobs(), clock.now, pay=lambda r: rate[r.job_id])
    assert best is min(records[1:3], key=lambda r: mine.rank(r.job_id))
    mine.tried.update(r.job_id for r in records[1:3])
    assert mine.choose(pool.jobs(), clock.now, pay=lambda r: rate[r.job_id]) is records[0]


# -- the claim queue --------------------------------------------------------------------------------------


class CountingScheduler(JobScheduler):
    """A real scheduler that counts the jobs a look judges (`closed` is called once per job passed)."""

    def __init__(self, serves=lambda model_id: model_id == SERVED) -> None:
        super().__init__(ME, serves)
        self.judged = 0

    def closed(self, record: JobRecord, now: float) -> bool:
        self.judged += 1
        return super().closed(record, now)


def queued(queue: ClaimQueue) -> list[bytes]:
    return [record.job_id for record in queue.jobs()]


def test_jobs_closed_for_good_leave_the_queue_on_the_first_look_and_others_stay(pool, clock):
    mine = scheduler()
    queue = ClaimQueue(mine)
    fresh = add_job(pool, "fresh")
    held = add_job(pool, "held by a rival")
    accept(pool, held, RIVAL)
    unchecked = add_job(pool, "a testament whose stake is not checked yet")
    add_testament(pool, unchecked, RIVAL)
    backed = add_job(pool, "a testament whose stake showed")
    add_testament(pool, backed, THIRD)
    declined = add_job(pool, "declined")
    late = add_job(pool, "due in 8 s", timelock=8)
    for record in (fresh, held, unchecked, backed, declined, late):
        queue.add(record, clock.now)
    queue.add(add_job(pool, "our own", client_node=ME), clock.now)  # never queued
    assert len(queue) == 6
    mine.backed.add(backed.job_id)
    mine.tried.add(declined.job_id)
    clock.now = T0 + 1  # too late to take `late` (8 s less patience(8), 7.8 s); the rival still holds `held`
    assert queue.choose(clock.now) is fresh
    assert queued(queue) == [fresh.job_id, held.job_id, unchecked.job_id]
    mine.claim(fresh)
    assert queue.choose(clock.now) is None
    assert queued(queue) == [held.job_id, unchecked.job_id]  # either may open again
    mine.unbacked.add((unchecked.job_id, RIVAL.public_key.to_bytes()))
    assert queue.choose(clock.now) is unchecked
    mine.claim(unchecked)
    clock.now = T0 + patience(MAX_TOKENS)  # the rival ran out of patience
    assert queue.choose(clock.now) is held
    queue.discard(held.job_id)  # the pool dropped it
    assert queue.choose(clock.now) is None and len(queue) == 0


def test_set_aside_jobs_come_back_in_their_places_on_a_transaction_or_a_block(pool, clock):
    served = {SERVED}
    mine = JobScheduler(ME, lambda model_id: model_id in served)
    queue = ClaimQueue(mine)
    records = [add_job(pool, f"job {i}") for i in range(4)]
    unserved = add_job(pool, "a model we fetch later", model=OTHER_MODEL)
    for record in [*records, unserved]:
        queue.add(record, clock.now)
    queue.set_aside(records[1], until_block=False)  # escrow not seen yet
    queue.set_aside(records[2], until_block=True)  # escrow short of its confirmations
    assert queue.waiting_for_tx()
    assert queue.choose(clock.now) in (records[0], records[3])
    assert queued(queue) == [records[0].job_id, records[3].job_id]  # the unserved job waits for a block
    queue.take_back(block=False)
    assert not queue.waiting_for_tx()
    assert queued(queue) == [records[0].job_id, records[1].job_id, records[3].job_id]
    served.add(OTHER_MODEL)
    queue.take_back(block=True)
    assert queued(queue) == [r.job_id for r in [*records, unserved]]
    assert queue.choose(clock.now) in [*records, unserved][:MAX_CANDIDATES]
    queue.set_aside(records[0], until_block=True)
    queue.discard(records[0].job_id)  # dropped while set aside: gone for good
    queue.take_back(block=True)
    assert queued(queue) == [r.job_id for r in [*records[1:], unserved]] and len(queue) == 4


def test_the_queue_chooses_what_a_walk_of_the_whole_pool_chooses(pool, clock):
    """Best-paying first, held jobs, testaments found unbacked, set-aside jobs, declines and claims, time
    passing, jobs arriving and leaving: at every look the queue and the old full walk agree."""
    rng = random.Random(15)
    mine = scheduler()
    queue = ClaimQueue(mine)
    pay: dict[bytes, float] = {}
    aside: set[bytes] = set()
    nodes = [PrivateKey.from_bytes(bytes([0x80 + i]) * 32) for i in range(3)]

    def arrive(i: int) -> JobRecord:
        model = SERVED if rng.random() < 0.8 else OTHER_MODEL
        record = add_job(pool, f"job {i}", model=model, timelock=rng.choice([20, 60, 600]))
        pay[record.job_id] = rng.choice([math.inf, 1.0, 2.0, 2.0, 3.0])  # inf: reward not located yet
        queue.add(record, clock.now)
        return record

    records = [arrive(i) for i in range(40)]
    for step in range(300):
        rate = lambda record: pay[record.job_id]  # noqa: E731
        walk = mine.choose((r for r in pool.jobs() if r.job_id not in aside), clock.now, rate)
        assert queue.choose(clock.now, rate) is walk, f"step {step}"
        record, roll = rng.choice(records), rng.random()
        if walk is not None and roll < 0.15:
            mine.claim(walk)
        elif walk is not None and roll < 0.25:
            mine.tried.add(walk.job_id)  # declined
        elif walk is not None and roll < 0.35:
            queue.set_aside(walk, until_block=rng.random() < 0.5)
            aside.add(walk.job_id)
        elif roll < 0.45:
            queue.take_back(block=True)
            aside.clear()
        elif roll < 0.55 and len(record.accepted_by) < 2:
            accept(pool, record, rng.choice(nodes))
        elif roll < 0.62 and not record.testaments:
            add_testament(pool, record, rng.choice(nodes))
        elif roll < 0.7 and record.testaments:
            node = next(iter(record.testaments))
            (mine.unbacked.add((record.job_id, node)) if rng.random() < 0.7 else mine.backed.add(record.job_id))
        elif roll < 0.8:
            records.append(arrive(len(records)))
        else:
            clock.now += rng.choice([0.5, 2.0, 5.0])


def bare_job(prompt: str) -> JobRecord:
    """A job record as the pool keeps it, unsigned: thousands of them without the signature checks."""
    job = JobParams(SERVED, *hidden(prompt), MAX_TOKENS, 0, 0, T0, 600, CLIENT.public_key.to_bytes(), "", 9733)
    return JobRecord(job, job.job_id(), b"\x66" * 32, CLIENT_NODE, history=[(JobState.CREATED, T0)])


def test_a_look_walks_the_open_jobs_not_the_closed_ones(clock):
    """Issue 15: 0.84 s per look at 4,000 jobs when every look walked the pool. After one look has dropped
    4,000 closed jobs, and set aside 4,000 whose escrows lack confirmations, a look judges a handful."""
    mine = CountingScheduler()
    queue = ClaimQueue(mine)
    for i in range(4_000):
        record = bare_job(f"closed {i}")
        queue.add(record, clock.now)
        mine.tried.add(record.job_id)  # declined, or taken by us
    waiting = [bare_job(f"waiting {i}") for i in range(4_000)]
    open_jobs = [bare_job(f"open {i}") for i in range(2 * MAX_CANDIDATES)]
    for record in waiting + open_jobs:
        queue.add(record, clock.now)
    mine.judged = 0
    waiting_ids = {r.job_id for r in waiting}
    while (choice := queue.choose(clock.now)) is not None and choice.job_id in waiting_ids:
        queue.set_aside(choice, until_block=True)
    assert choice in open_jobs[:MAX_CANDIDATES]
    assert mine.judged > 4_000
    for _ in range(10):
        mine.judged = 0
        assert queue.choose(clock.now) is choice
        assert mine.judged <= 2 * MAX_CANDIDATES  # each candidate once in the walk and once in is_open
    queue.take_back(block=True)  # the block came: the waiting jobs are back in their places
    assert queued(queue)[:4_000] == [r.job_id for r in waiting]
