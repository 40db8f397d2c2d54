"""The job pool: jobs tracked with their state history, signatures checked, bounded in count and age."""

from __future__ import annotations

import pytest

from camelid.chain.jobpool import (
    RETAIN_SECONDS,
    JobPool,
    JobRejected,
    JobState,
    TestamentRecord,
    job_accept_digest,
    job_offer_digest,
)
from camelid.core.job import JobParams
from camelid.core.jobscripts import commitment_signature_digest
from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.crypto.keys import PrivateKey

WINDOW = 5
T0 = 1_800_000_000
CLIENT = PrivateKey.from_bytes(b"\x11" * 32)
NODE = PrivateKey.from_bytes(b"\x22" * 32)
JOB_KEY = PrivateKey.from_bytes(b"\x33" * 32)
CLIENT_NODE = PrivateKey.from_bytes(b"\x44" * 32).public_key.to_bytes()
ESCROW_TXID = b"\x55" * 32
COMMITMENT = b"\x66" * 32


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def params(prompt: str = "llamas", timestamp: int = T0) -> JobParams:
    return JobParams(b"\x01" * 32, prompt, 8, 0, 0, timestamp, 600, CLIENT.public_key.to_bytes(), "", 9733)


def offer(job: JobParams, key: PrivateKey = CLIENT) -> tuple[bytes, bytes, bytes, bytes]:
    signature = key.sign(job_offer_digest(job.job_id(), ESCROW_TXID, CLIENT_NODE))
    return job.to_bytes(), ESCROW_TXID, CLIENT_NODE, signature


def signed_testament(signer: PrivateKey = JOB_KEY) -> TestamentRecord:
    node = NODE.public_key.to_bytes()
    signature = signer.sign(commitment_signature_digest(COMMITMENT))
    return TestamentRecord(node, JOB_KEY.public_key.to_bytes(), COMMITMENT, signature, b"\x77" * 32)


def accept(job_id: bytes, key: PrivateKey = NODE) -> tuple[bytes, bytes, bytes]:
    node = NODE.public_key.to_bytes()
    return job_id, node, key.sign(job_accept_digest(job_id, node))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pool(clock) -> JobPool:
    return JobPool(WINDOW, clock=clock)


def test_a_job_goes_through_its_states_each_with_the_time_it_was_reached(pool, clock):
    job = params()
    record = pool.add_job(*offer(job))
    assert record is pool.get(job.job_id()) and record.state == JobState.CREATED
    assert pool.add_job(*offer(job)) is None  # known already: nothing to relay
    clock.now += 1
    assert pool.add_accept(*accept(job.job_id())) is True
    assert pool.add_accept(*accept(job.job_id())) is False
    clock.now += 2
    assert pool.add_testament(job.job_id(), signed_testament()) is True
    clock.now += 3
    payment = Transaction(inputs=(TxIn(ESCROW_TXID, 0, b"\x51"),), outputs=(TxOut(1, b"\x51"),), job_id=job.job_id())
    unrelated = Transaction(inputs=(TxIn(b"\x99" * 32, 0, b"\x51"),), outputs=(TxOut(1, b"\x51"),), job_id=job.job_id())
    assert pool.settle_block([unrelated]) == []
    assert pool.settle_block([payment]) == [record]
    assert record.history == [
        (JobState.CREATED, T0),
        (JobState.ACCEPTED, T0 + 1),
        (JobState.COMPLETED, T0 + 3),
        (JobState.SETTLED, T0 + 6),
    ]
    info = record.to_json()
    assert [h["state"] for h in info["history"]] == ["created", "accepted", "completed", "settled"]
    assert info["jobid"] == job.job_id()[::-1].hex() and len(info["testaments"]) == 1


def test_a_slashed_job_stays_slashed_when_its_payment_is_mined(pool):
    job = params()
    record = pool.add_job(*offer(job))
    pool.advance(record, JobState.SLASHED)
    payment = Transaction(inputs=(TxIn(ESCROW_TXID, 0, b"\x51"),), outputs=(TxOut(1, b"\x51"),), job_id=job.job_id())
    assert pool.settle_block([payment]) == []
    assert record.state == JobState.SLASHED


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (lambda: offer(params(), key=NODE), "bad-job-signature"),
        (lambda: (b"\x01garbage", ESCROW_TXID, CLIENT_NODE, b"\x30"), "bad-job-params"),
        (lambda: offer(params(timestamp=T0 + 3 * 3600)), "job-time-too-new"),
    ],
)
def test_an_invalid_or_unsigned_job_is_rejected_with_a_reason(pool, raw, reason):
    with pytest.raises(JobRejected) as rejected:
        pool.add_job(*raw())
    assert rejected.value.reason == reason
    assert len(pool) == 0


def test_claims_signed_by_the_wrong_key_are_rejected_and_claims_on_unknown_jobs_ignored(pool):
    job = params()
    assert pool.add_accept(*accept(job.job_id())) is False
    assert pool.add_testament(job.job_id(), signed_testament()) is False
    pool.add_job(*offer(job))
    with pytest.raises(JobRejected, match="bad-jobaccept-signature"):
        pool.add_accept(*accept(job.job_id(), key=CLIENT))
    with pytest.raises(JobRejected, match="bad-testament-signature"):
        pool.add_testament(job.job_id(), signed_testament(signer=NODE))
    assert pool.get(job.job_id()).state == JobState.CREATED


def test_the_pool_evicts_the_oldest_job_when_full(clock):
    pool = JobPool(WINDOW, max_jobs=2, clock=clock)
    jobs = [params(prompt=f"job {i}") for i in range(3)]
    for job in jobs:
        pool.add_job(*offer(job))
    assert [r.job_id for r in pool.jobs()] == [jobs[1].job_id(), jobs[2].job_id()]


def test_an_open_job_expires_after_its_refund_time_and_is_forgotten_later(pool, clock):
    job = params()
    record = pool.add_job(*offer(job))
    refund = pool.refund_time(job)
    assert refund == T0 + 600 + WINDOW
    clock.now = refund + 1
    pool.prune()
    assert record.state == JobState.EXPIRED
    clock.now = refund + RETAIN_SECONDS + 1
    pool.prune()
    assert pool.get(job.job_id()) is None
    assert pool.add_job(*offer(job)) is None  # too old to track again
