"""The job pool: jobs tracked with their state history, signatures checked, bounded in count and age."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prompt_support import hidden

from camelid.chain.jobpool import (
    MAX_ACCEPTS_PER_JOB,
    RETAIN_SECONDS,
    DeliveryRecord,
    IllegalTransition,
    JobPool,
    JobRejected,
    JobState,
    TestamentRecord,
    job_accept_digest,
    job_delivery_digest,
    job_offer_digest,
)
from camelid.core.job import JobParams
from camelid.core.jobscripts import (
    MAX_DELIVERY_SIZE,
    JobLock,
    commitment_signature_digest,
    delivery_script_sig,
    job_lock_script,
    match_job_lock,
    payout_script,
    stake_script,
)
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
    return JobParams(b"\x01" * 32, *hidden(prompt), 8, 0, 0, timestamp, 600, CLIENT.public_key.to_bytes(), "", 9733)


def offer(job: JobParams, key: PrivateKey = CLIENT) -> tuple[bytes, bytes, bytes, bytes]:
    signature = key.sign(job_offer_digest(job.job_id(), ESCROW_TXID, CLIENT_NODE))
    return job.to_bytes(), ESCROW_TXID, CLIENT_NODE, signature


STAKE_TXID = b"\x77" * 32


def signed_testament(
    job_id: bytes = b"", signer: PrivateKey = JOB_KEY, node_key: PrivateKey = NODE, node: PrivateKey = NODE
) -> TestamentRecord:
    """NODE's testament for `job_id`, its commitment signed by `signer` (Pn) and the whole by `node_key`,
    naming `node` as its node."""
    signature = signer.sign(commitment_signature_digest(COMMITMENT))
    testament = TestamentRecord(
        node.public_key.to_bytes(), JOB_KEY.public_key.to_bytes(), COMMITMENT, signature, STAKE_TXID
    )
    return replace(testament, node_signature=node_key.sign(testament.digest(job_id)))


def payment(job: JobParams, commitment: bytes = COMMITMENT) -> Transaction:
    """The client's escrow spend to JOB_KEY's PAYOUT (the signature is consensus's business, not the pool's)."""
    deadline = T0 + job.timelock
    payout = payout_script(
        job.job_id(), JOB_KEY.public_key.to_bytes(), job.client_pubkey, commitment, job.model_id, T0, deadline,
        deadline + WINDOW,
    )
    return Transaction(inputs=(TxIn(ESCROW_TXID, 0, b"\x51"),), outputs=(TxOut(1, payout),), job_id=job.job_id())


def stake(job: JobParams, commitment: bytes = COMMITMENT) -> JobLock:
    """JOB_KEY's STAKE for `job`."""
    script = stake_script(
        job.job_id(), JOB_KEY.public_key.to_bytes(), job.client_pubkey, commitment, job.model_id, T0,
        T0 + job.timelock, T0 + job.timelock + WINDOW,
    )
    return match_job_lock(script)


def delivery(
    job_id: bytes,
    sealed: bytes = b"\x01" * 40,
    signer: PrivateKey = JOB_KEY,
    node_key: PrivateKey = NODE,
    stake_txid: bytes = STAKE_TXID,
) -> tuple[bytes, DeliveryRecord]:
    """NODE's delivery: signed by `signer` (its Pn) and `node_key` (its node key)."""
    node = NODE.public_key.to_bytes()
    digest = job_delivery_digest(job_id, node, stake_txid, sealed)
    return job_id, DeliveryRecord(node, b"", sealed, signer.sign(digest), stake_txid, node_key.sign(digest))


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
    assert pool.add_testament(job.job_id(), signed_testament(job.job_id())) is True
    clock.now += 3
    paid = payment(job)
    unrelated = Transaction(inputs=(TxIn(b"\x99" * 32, 0, b"\x51"),), outputs=(TxOut(1, b"\x51"),), job_id=job.job_id())
    assert pool.settle_block([unrelated]) == []
    assert pool.settle_block([paid]) == [record]
    assert record.history == [
        (JobState.CREATED, T0),
        (JobState.ACCEPTED, T0 + 1),
        (JobState.COMPLETED, T0 + 3),
        (JobState.PAID, T0 + 6),
        (JobState.SETTLED, T0 + 6),
    ]
    info = record.to_json()
    assert [h["state"] for h in info["history"]] == ["created", "accepted", "completed", "paid", "settled"]
    assert info["jobid"] == job.job_id()[::-1].hex() and len(info["testaments"]) == 1
    assert info["payment_txids"] == [paid.txid()] and info["client_pubkey"] == job.client_pubkey.hex()


def test_a_mined_escrow_spend_that_is_no_payment_is_the_refund(pool):
    job = params()
    record = pool.add_job(*offer(job))
    refund = Transaction(
        inputs=(TxIn(ESCROW_TXID, 0, b"\x51", sequence=0xFFFFFFFE),), outputs=(TxOut(1, b"\x51"),),
        lock_time=pool.refund_time(job), job_id=job.job_id(),
    )
    assert pool.record_payment(refund) is None
    assert pool.settle_block([refund]) == [record]
    assert record.state == JobState.REFUNDED and record.payments == {}


def test_a_spend_of_the_escrow_transactions_change_with_the_job_id_leaves_the_job_open(pool):
    """The client's change from the escrow transaction may fund its bond in a dispute, in a transaction that
    carries the job id: it is neither a payment nor a refund (consensus allows no other escrow spend)."""
    job = params()
    record = pool.add_job(*offer(job))
    change = Transaction(inputs=(TxIn(ESCROW_TXID, 1, b"\x51"),), outputs=(TxOut(1, b"\x51"),), job_id=job.job_id())
    assert pool.settle_block([change]) == []
    assert record.state == JobState.CREATED


def test_a_signed_delivery_is_recorded_once_for_a_node_with_a_testament(pool):
    job = params()
    record = pool.add_job(*offer(job))
    assert pool.add_delivery(*delivery(job.job_id())) is None  # no testament yet: flooding reordered them
    pool.add_testament(job.job_id(), signed_testament(job.job_id()))
    recorded = pool.add_delivery(*delivery(job.job_id()))
    assert recorded is not None and recorded.node_pubkey == JOB_KEY.public_key.to_bytes()
    assert pool.add_delivery(*delivery(job.job_id())) is None  # known: nothing to relay
    assert record.state == JobState.DELIVERED
    assert record.to_json()["delivered_by"] == [NODE.public_key.to_bytes().hex()]


@pytest.mark.parametrize(
    ("sealed", "signer", "reason"),
    [
        (b"\x01" * 40, NODE, "bad-delivery-signature"),  # signed by the node id, not its job key Pn
        (b"\x01" * (MAX_DELIVERY_SIZE + 1), JOB_KEY, "bad-delivery-size"),  # more than a delivery carries on chain
    ],
)
def test_a_delivery_too_large_or_not_signed_by_the_testaments_key_is_rejected(pool, sealed, signer, reason):
    job = params()
    pool.add_job(*offer(job))
    pool.add_testament(job.job_id(), signed_testament(job.job_id()))
    with pytest.raises(JobRejected) as rejected:
        pool.add_delivery(*delivery(job.job_id(), sealed, signer))
    assert rejected.value.reason == reason
    assert pool.get(job.job_id()).deliveries == {}


def test_a_payment_is_recorded_once_published_per_node_commitment(pool):
    job = params()
    record = pool.add_job(*offer(job))
    pool.add_testament(job.job_id(), signed_testament(job.job_id()))
    assert pool.record_payment(payment(job), published=False) is record  # directed: only client and node know it
    assert pool.record_payment(payment(job, commitment=b"\x99" * 32)) is record  # paid, to another commitment
    assert pool.record_payment(payment(job)) is record  # now published
    assert pool.record_payment(payment(job)) is None


def delivery_tx(job: JobParams, blob: bytes, stake_txid: bytes = STAKE_TXID, delivered_blob: bytes | None = None):
    """JOB_KEY's STAKE moved, with `blob` in the scriptSig, into a DELIVERED lock committing to `delivered_blob`
    (default: `blob`). The signature is consensus's business: the pool sees only mempool- or block-checked ones."""
    stake_lock = stake(job)
    assert stake_lock is not None
    out = TxOut(1, job_lock_script(stake_lock.delivered(blob if delivered_blob is None else delivered_blob)))
    txin = TxIn(stake_txid, 0, delivery_script_sig(b"\x30sig", blob))
    return Transaction(inputs=(txin,), outputs=(out,), job_id=job.job_id())


def test_a_delivery_transaction_is_a_delivery_read_from_the_chain(pool):
    job = params()
    record = pool.add_job(*offer(job))
    assert pool.record_delivery_tx(delivery_tx(job, b"sealed")) is None  # no testament names that stake yet
    pool.add_testament(job.job_id(), signed_testament(job.job_id()))
    assert pool.record_delivery_tx(delivery_tx(job, b"sealed", stake_txid=b"\x78" * 32)) is None  # another stake
    assert pool.record_delivery_tx(delivery_tx(job, b"sealed", delivered_blob=b"other")) is None
    tx = delivery_tx(job, b"sealed")
    delivered = pool.record_delivery_tx(tx)
    assert delivered is not None and delivered.sealed == b"sealed" and delivered.node == NODE.public_key.to_bytes()
    assert record.state == JobState.DELIVERED and record.delivery_txids == {JOB_KEY.public_key.to_bytes(): tx.hash}
    assert pool.record_delivery_tx(tx) is None  # known
    assert record.to_json()["delivery_txids"] == [tx.txid()]


def test_a_delivery_message_then_its_transaction_is_one_delivery(pool):
    job = params()
    record = pool.add_job(*offer(job))
    pool.add_testament(job.job_id(), signed_testament(job.job_id()))
    assert pool.add_delivery(*delivery(job.job_id(), sealed=b"sealed")) is not None
    tx = delivery_tx(job, b"sealed")
    assert pool.record_delivery_tx(tx) is None and record.delivery_txids == {JOB_KEY.public_key.to_bytes(): tx.hash}


def test_the_blob_on_chain_replaces_another_that_was_flooded(pool):
    job = params()
    record = pool.add_job(*offer(job))
    pool.add_testament(job.job_id(), signed_testament(job.job_id()))
    flooded = pool.add_delivery(*delivery(job.job_id(), sealed=b"garbage"))
    assert flooded is not None and not flooded.from_chain
    tx = delivery_tx(job, b"sealed")  # what the DELIVERED lock commits to, and a bad-delivery proof would take
    on_chain = pool.record_delivery_tx(tx)
    assert on_chain is not None and on_chain.sealed == b"sealed" and on_chain.from_chain
    assert list(record.deliveries.values()) == [on_chain]
    assert pool.record_delivery_tx(tx) is None  # known now


def test_a_slashed_job_stays_slashed_when_its_payment_is_mined(pool):
    job = params()
    record = pool.add_job(*offer(job))
    for state in (JobState.PAID, JobState.DISPUTED, JobState.SLASHED):
        pool.advance(record, state)
    payment = Transaction(inputs=(TxIn(ESCROW_TXID, 0, b"\x51"),), outputs=(TxOut(1, b"\x51"),), job_id=job.job_id())
    assert pool.settle_block([payment]) == []
    assert record.state == JobState.SLASHED


def test_a_job_moves_only_as_the_transition_table_allows(pool):
    record = pool.add_job(*offer(params()))
    with pytest.raises(IllegalTransition, match="cannot go from created to verified"):
        pool.advance(record, JobState.VERIFIED)
    assert pool.advance(record, JobState.COMPLETED) and not pool.advance(record, JobState.COMPLETED)
    assert not pool.advance(record, JobState.ACCEPTED)  # a jobaccept that arrives late does not move it back
    assert [state for state, _ in record.history] == [JobState.CREATED, JobState.COMPLETED]
    pool.advance(record, JobState.REFUNDED)
    for later in (JobState.SETTLED, JobState.EXPIRED):  # refunded ends the job
        with pytest.raises(IllegalTransition):
            pool.advance(record, later)


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
    assert pool.add_testament(job.job_id(), signed_testament(job.job_id())) is False
    pool.add_job(*offer(job))
    with pytest.raises(JobRejected, match="bad-jobaccept-signature"):
        pool.add_accept(*accept(job.job_id(), key=CLIENT))
    with pytest.raises(JobRejected, match="bad-testament-signature"):
        pool.add_testament(job.job_id(), signed_testament(job.job_id(), signer=NODE))
    assert pool.get(job.job_id()).state == JobState.CREATED


def test_the_pool_evicts_the_oldest_job_when_full(clock):
    pool = JobPool(WINDOW, max_jobs=2, clock=clock)
    jobs = [params(prompt=f"job {i}") for i in range(3)]
    for job in jobs:
        pool.add_job(*offer(job))
    assert [r.job_id for r in pool.jobs()] == [jobs[1].job_id(), jobs[2].job_id()]


def test_a_job_this_node_has_a_part_in_is_never_evicted(clock):
    """Issue 15: spam that fills the pool must not make the node forget its own escrow, stake or payment."""
    pool = JobPool(WINDOW, max_jobs=2, clock=clock)
    own, other, *spam = [params(prompt=f"job {i}") for i in range(5)]
    pool.pinned = lambda job_id: job_id == own.job_id()
    for job in (own, other, spam[0]):
        pool.add_job(*offer(job))
    assert [r.job_id for r in pool.jobs()] == [own.job_id(), spam[0].job_id()]  # the oldest unpinned went
    pool.pinned = lambda job_id: True
    assert pool.add_job(*offer(spam[1])) is None  # full of jobs we are part of: the newcomer waits
    assert pool.get(own.job_id()) is not None


def test_the_open_index_holds_the_jobs_in_play_oldest_first(pool, clock):
    first, second = (pool.add_job(*offer(params(prompt=p))) for p in ("a", "b"))
    assert pool.open_jobs() == [first, second]
    pool.advance(first, JobState.CANCELLED)
    assert pool.open_jobs() == [second]
    clock.now = pool.refund_time(second.params) + 1
    pool.prune()
    assert pool.open_jobs() == []


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


def test_a_testament_or_delivery_naming_a_node_that_did_not_sign_it_is_rejected_and_the_real_one_kept(pool):
    """A forger cannot publish a testament under another node's id: it would close the job for that node,
    and turn the node's honest delivery into a bad signature."""
    job = params()
    record = pool.add_job(*offer(job))
    forger = PrivateKey.from_bytes(b"\x99" * 32)
    with pytest.raises(JobRejected, match="forged-testament"):
        pool.add_testament(job.job_id(), signed_testament(job.job_id(), node_key=forger))
    with pytest.raises(JobRejected, match="forged-testament"):  # NODE's signature, replayed for another job
        pool.add_testament(job.job_id(), signed_testament(b"\x01" * 32))
    assert record.testaments == {}
    assert pool.add_testament(job.job_id(), signed_testament(job.job_id())) is True
    with pytest.raises(JobRejected, match="forged-delivery"):
        pool.add_delivery(*delivery(job.job_id(), node_key=forger))
    assert pool.add_delivery(*delivery(job.job_id())) is not None


def test_a_delivery_for_another_testament_of_its_node_is_ignored_without_blame(pool):
    job = params()
    pool.add_job(*offer(job))
    pool.add_testament(job.job_id(), signed_testament(job.job_id()))
    assert pool.add_delivery(*delivery(job.job_id(), stake_txid=b"\x78" * 32)) is None


def test_accepts_beyond_the_bound_are_ignored(pool):
    job = params()
    record = pool.add_job(*offer(job))
    for i in range(MAX_ACCEPTS_PER_JOB + 3):
        key = PrivateKey.from_bytes(bytes([i + 1]) * 32)
        node = key.public_key.to_bytes()
        added = pool.add_accept(job.job_id(), node, key.sign(job_accept_digest(job.job_id(), node)))
        assert added is (i < MAX_ACCEPTS_PER_JOB)
    assert len(record.accepted_by) == MAX_ACCEPTS_PER_JOB
