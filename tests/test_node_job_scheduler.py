"""Which pool job a free compute node takes: open jobs only, oldest first by rank, others' claims honoured."""

from __future__ import annotations

import statistics

import pytest

from camelid.chain.jobpool import JobPool, JobRecord, TestamentRecord, job_accept_digest, job_offer_digest
from camelid.core.job import JobParams
from camelid.core.jobscripts import commitment_signature_digest
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.scheduler import (
    CLAIM_SPREAD,
    CONTEST_WINDOW,
    MAX_CANDIDATES,
    ClaimQueue,
    JobScheduler,
    claim_rank,
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
    job = JobParams(model, prompt, MAX_TOKENS, 0, 0, T0, timelock, CLIENT.public_key.to_bytes(), "", 9733)
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
    key = PrivateKey.from_bytes(b"\x77" * 32)
    done = add_job(pool, "done")
    signature = key.sign(commitment_signature_digest(b"\x88" * 32))
    pool.add_testament(
        done.job_id,
        TestamentRecord(RIVAL.public_key.to_bytes(), key.public_key.to_bytes(), b"\x88" * 32, signature, b"\x99" * 32),
    )
    assert not mine.is_open(done, clock.now)


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


def test_of_two_nodes_that_claim_a_job_together_only_the_better_ranked_keeps_it(pool, clock):
    record = add_job(pool)
    rival_id = RIVAL.public_key.to_bytes()
    mine, rivals = scheduler(), scheduler(rival_id)
    mine.claim(record, clock.now)
    rivals.claim(record, clock.now)
    assert mine.contest_ends(record.job_id) == clock.now + CONTEST_WINDOW
    for node, signer in ((ME, PrivateKey.from_bytes(b"\x22" * 32)), (rival_id, RIVAL)):
        assert pool.add_accept(record.job_id, node, signer.sign(job_accept_digest(record.job_id, node)))
    better = min((ME, rival_id), key=lambda node: claim_rank(node, record.job_id))
    worse = rival_id if better == ME else ME
    by_node = {ME: mine, rival_id: rivals}
    assert by_node[better].rival_first(record) is None  # it stakes and publishes the testament
    assert by_node[worse].rival_first(record) == better  # it leaves the job before staking


def test_an_accepter_that_ran_out_of_patience_before_our_claim_is_no_rival(pool, clock):
    record = add_job(pool)
    accept(pool, record, RIVAL)
    clock.now += patience(MAX_TOKENS)
    mine = scheduler()
    assert mine.is_open(record, clock.now)
    mine.claim(record, clock.now)
    assert mine.rival_first(record) is None  # whatever its rank: it had its turn
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


def test_a_look_for_work_passes_a_closed_job_once_and_set_aside_jobs_not_at_all(pool, clock):
    """Issue 15: a look cost a walk of the whole pool (0.84 s at 4,000 jobs, every 50 ms); now it passes
    only the jobs still open to us."""
    walked = []
    mine = scheduler()
    queue = ClaimQueue(mine, lambda job_id: walked.append(job_id) is None and pool.get(job_id) is not None)
    records = [add_job(pool, f"job {i}") for i in range(4_000)]
    for record in records:
        queue.add(record, clock.now)
    mine.tried.update(r.job_id for r in records[:3_990])  # taken or declined: closed to us for good
    walked.clear()
    first = queue.choose(clock.now)
    assert first in records[3_990:] and len(walked) > 3_990
    walked.clear()
    assert queue.choose(clock.now) is first and len(walked) <= 2 * MAX_CANDIDATES  # the closed ones are gone
    for record in records[3_990:]:
        queue.set_aside(record, until_block=True)  # escrows short of confirmations
    walked.clear()
    assert queue.choose(clock.now) is None and walked == []
    queue.take_back(block=False)
    assert queue.choose(clock.now) is None  # a transaction does not bring back what waits for a block
    queue.take_back(block=True)
    assert queue.choose(clock.now) is first
    assert [r.job_id for r in queue.jobs()] == [r.job_id for r in records[3_990:]]  # oldest first again
