"""The job pool: every job a full node has seen on the network, with its state history (whitepaper 2.4).

Jobs arrive as flooded P2P messages (job, jobaccept, testament, jobdelivery) and leave through the
chain (the payment mined: settled; the escrow refunded: refunded). Payments are recorded as they
reach the mempool or a block, deliveries as they arrive signed or as their delivery transaction (the
STAKE moved, with the sealed output, into its DELIVERED lock) reaches the mempool or a block. Every transition is
recorded with its time, so an operator can see where a job stopped. The pool is bounded in count
and age: a job is kept until its refund time (t0 + timelock + dispute window) plus RETAIN_SECONDS,
and the oldest go first when it is full -- except the jobs this node has a part in (`pinned`), which
only age out. The jobs still in play are indexed apart, so a compute node's look for work never walks
the finished ones. A message that is malformed or carries a bad signature
raises JobRejected, which the P2P layer turns into a protocol violation; one that is merely late
(an expired job, a testament for a job we never saw) is ignored without blame, since honest relays
can send those.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from camelid.core.fill import Fill
from camelid.core.job import JobParams
from camelid.core.jobscripts import MAX_DELIVERY_SIZE, commitment_signature_digest, delivered_blob, match_job_lock
from camelid.core.transaction import Transaction
from camelid.crypto.hashes import sha256, sha256d
from camelid.crypto.keys import PublicKey

MAX_JOBS = 10_000
RETAIN_SECONDS = 24 * 3600
"""How long a job stays after its refund time, for getjob and for matching late chain events."""
MAX_FUTURE_SECONDS = 2 * 3600
"""A job created further ahead of our clock than this is refused (as Bitcoin's block time limit)."""
MAX_CLAIMS_PER_JOB = 16
"""Testaments kept per job: enough for competing nodes, too few to flood memory."""
MAX_ACCEPTS_PER_JOB = 4
"""Accepts kept (and relayed) per job: node ids cost nothing, so a flood of throwaway claims stops here; the
scheduler counts even fewer of them towards how long a job is held (camelid.node.jobs.scheduler)."""

_OFFER_TAG = b"camelid/job-offer/v1"
_ACCEPT_TAG = b"camelid/job-accept/v1"
_TESTAMENT_TAG = b"camelid/job-testament/v1"
_DELIVERY_TAG = b"camelid/job-delivery/v2"


class JobState(StrEnum):
    CREATED = "created"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    PAID = "paid"
    DELIVERED = "delivered"
    VERIFIED = "verified"
    SETTLED = "settled"
    DISPUTED = "disputed"
    SLASHED = "slashed"
    REFUNDED = "refunded"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


_S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    _S.CREATED: frozenset({_S.ACCEPTED, _S.COMPLETED, _S.PAID, _S.CANCELLED, _S.REFUNDED, _S.EXPIRED}),
    _S.ACCEPTED: frozenset({_S.COMPLETED, _S.PAID, _S.CANCELLED, _S.REFUNDED, _S.EXPIRED}),
    _S.COMPLETED: frozenset({_S.PAID, _S.DELIVERED, _S.CANCELLED, _S.REFUNDED, _S.EXPIRED}),
    _S.PAID: frozenset({_S.DELIVERED, _S.SETTLED, _S.DISPUTED, _S.REFUNDED, _S.EXPIRED}),
    _S.DELIVERED: frozenset({_S.PAID, _S.VERIFIED, _S.DISPUTED, _S.SETTLED, _S.REFUNDED, _S.EXPIRED}),
    _S.VERIFIED: frozenset({_S.SETTLED, _S.REFUNDED, _S.EXPIRED}),
    _S.DISPUTED: frozenset({_S.VERIFIED, _S.SLASHED, _S.SETTLED, _S.REFUNDED, _S.EXPIRED}),
    _S.SETTLED: frozenset({_S.DELIVERED, _S.VERIFIED, _S.DISPUTED, _S.SLASHED}),
    _S.SLASHED: frozenset(),
    _S.REFUNDED: frozenset(),
    _S.EXPIRED: frozenset({_S.DELIVERED, _S.VERIFIED, _S.DISPUTED, _S.SLASHED, _S.SETTLED, _S.REFUNDED}),
    _S.CANCELLED: frozenset({_S.REFUNDED, _S.EXPIRED}),
}
"""Every allowed change of a job's state: the one place that says how a job moves (JobPool.advance).

A settled payment (mined) may come before the delivery it paid for and its verdict; a job disputed
for a missing delivery is verified when the delivery comes late; an expired job may still be
settled, refunded or slashed by the chain. SLASHED and REFUNDED end a job."""

LATE_FACTS = frozenset({_S.ACCEPTED, _S.COMPLETED, _S.PAID, _S.DELIVERED})
"""States that record what the network reported: one that arrives after the job moved past it (flooding
reorders messages, a restarted node catches up) is kept in the record but does not move the job back."""


class IllegalTransition(RuntimeError):
    """A role tried to move a job in a way TRANSITIONS does not allow: a bug, not bad input."""


class JobRejected(ValueError):
    """A job message that no honest node sends; `reason` is a short tag for logs and the peer's penalty."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def job_offer_digest(job_id: bytes, escrow_txid: bytes, client_node: bytes) -> bytes:
    """What the client signs with Pc to publish a job: the job, its escrow, and where to deliver."""
    return sha256d(_OFFER_TAG + job_id + escrow_txid + client_node)


def job_accept_digest(job_id: bytes, node: bytes) -> bytes:
    """What a compute node signs with its identity key to claim a job."""
    return sha256d(_ACCEPT_TAG + job_id + node)


def job_testament_digest(job_id: bytes, node: bytes, node_pubkey: bytes, commitment: bytes, stake_txid: bytes) -> bytes:
    """What a compute node signs with its node key to stand behind a testament: the job, itself, its job key Pn,
    its commitment C and its stake. Pn's own signature of C is what the chain checks (a fraud proof); this one
    is what lets every node drop a testament that names a node which did not send it."""
    return sha256d(_TESTAMENT_TAG + job_id + node + node_pubkey + commitment + stake_txid)


def job_delivery_digest(job_id: bytes, node: bytes, stake_txid: bytes, sealed: bytes) -> bytes:
    """What a compute node signs, with its job key Pn and with its node key, to publish its encrypted output."""
    return sha256d(_DELIVERY_TAG + job_id + node + stake_txid + sha256(sealed))


@dataclass(frozen=True)
class DeliveryRecord:
    """A node's output for a job, encrypted to the client, signed with the node's job key Pn and its node key."""

    node: bytes
    node_pubkey: bytes
    sealed: bytes
    signature: bytes  # by Pn over job_delivery_digest
    stake_txid: bytes = b""  # the stake of the testament it delivers for
    node_signature: bytes = b""  # by the node key over job_delivery_digest

    @property
    def from_chain(self) -> bool:
        """Read from a delivery transaction (its verified script binds the blob), not from a signed message."""
        return not self.signature


@dataclass(frozen=True)
class PaymentRecord:
    """A payment moving a job's escrow to a node's PAYOUT, and when this node first saw it published."""

    txid: bytes
    seen_at: float | None  # None: signed and sent directed, not yet in a mempool or block


@dataclass(frozen=True)
class TestamentRecord:
    """A node's signed commitment to its output and the stake transaction behind it."""

    __test__ = False  # not a pytest test class

    node: bytes
    node_pubkey: bytes
    commitment: bytes
    signature: bytes  # by Pn over commitment_signature_digest(C): the signature a fraud proof carries
    stake_txid: bytes
    node_signature: bytes = b""  # by the node key over job_testament_digest

    def digest(self, job_id: bytes) -> bytes:
        return job_testament_digest(job_id, self.node, self.node_pubkey, self.commitment, self.stake_txid)


@dataclass
class JobRecord:
    params: JobParams
    job_id: bytes
    escrow_txid: bytes
    client_node: bytes
    signature: bytes = b""  # the client's signature of the job message, kept to relay it to new peers
    history: list[tuple[JobState, float]] = field(default_factory=list)
    accepted_by: list[bytes] = field(default_factory=list)
    accept_signatures: dict[bytes, bytes] = field(default_factory=dict)  # by node id, to relay the jobaccepts
    testaments: dict[bytes, TestamentRecord] = field(default_factory=dict)
    deliveries: dict[bytes, DeliveryRecord] = field(default_factory=dict)  # by the node's job key Pn
    payments: dict[bytes, PaymentRecord] = field(default_factory=dict)  # by Pn || C of the PAYOUT
    delivery_txids: dict[bytes, bytes] = field(default_factory=dict)  # by Pn: its delivery transaction, once published

    @property
    def state(self) -> JobState:
        return self.history[-1][0]

    def reached(self, state: JobState) -> bool:
        return any(s == state for s, _ in self.history)

    def to_json(self) -> dict[str, Any]:
        p = self.params
        return {
            "jobid": self.job_id[::-1].hex(),
            "state": self.state.value,
            "history": [{"state": s.value, "time": at} for s, at in self.history],
            "model": p.model_id.hex(),
            "prompt_commitment": p.prompt_commitment.hex(),
            "prompt_length": p.prompt_length,
            "prompt_unit": "tokens" if p.prompt_unit else "bytes",
            "max_tokens": p.max_tokens,
            "seed": p.seed,
            "temperature": p.temperature_milli / 1000,
            "timestamp": p.timestamp,
            "timelock": p.timelock,
            "escrow_txid": self.escrow_txid[::-1].hex(),
            "client_pubkey": p.client_pubkey.hex(),
            "accepted_by": [n.hex() for n in self.accepted_by],
            "testaments": [
                {
                    "node": t.node.hex(),
                    "node_pubkey": t.node_pubkey.hex(),
                    "commitment": t.commitment.hex(),
                    "stake_txid": t.stake_txid[::-1].hex(),
                }
                for t in self.testaments.values()
            ],
            "delivered_by": [d.node.hex() for d in self.deliveries.values()],
            "delivery_txids": [txid[::-1].hex() for txid in self.delivery_txids.values()],
            "payment_txids": [payment.txid[::-1].hex() for payment in self.payments.values()],
        }


class JobPool:
    """Jobs by Job ID, oldest first; not thread-safe (the node uses it from its event loop)."""

    def __init__(self, dispute_window: int, max_jobs: int = MAX_JOBS, clock: Callable[[], float] = time.time) -> None:
        self.dispute_window = dispute_window
        self.max_jobs = max_jobs
        self._clock = clock
        self._jobs: OrderedDict[bytes, JobRecord] = OrderedDict()
        self._open: dict[bytes, JobRecord] = {}  # the jobs not in a final state, oldest first
        self.pinned: Callable[[bytes], bool] = lambda job_id: False
        """Whether this node has a part in a job (its client or compute record): such a job is never evicted."""
        self.on_change: Callable[[bytes], None] = lambda job_id: None
        """Called with a Job ID whenever that job changed, was added, or was dropped (the node's job journal)."""

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: bytes) -> JobRecord | None:
        return self._jobs.get(job_id)

    def fill(self) -> Fill:
        return Fill(len(self._jobs), self.max_jobs)

    def jobs(self) -> list[JobRecord]:
        return list(self._jobs.values())

    def add_job(self, raw_params: bytes, escrow_txid: bytes, client_node: bytes, signature: bytes) -> JobRecord | None:
        """Record a new job; None if it is known already, expired, or the pool is full of pinned jobs.

        JobRejected if invalid or unsigned.
        """
        params = self.check_offer(raw_params, escrow_txid, client_node, signature)
        job_id = params.job_id()
        now = self._clock()
        if job_id in self._jobs or self.refund_time(params) + RETAIN_SECONDS < now:
            return None
        if len(self._jobs) >= self.max_jobs:
            self.prune()  # only when full: a walk of the whole pool per job would be its own flood
        if len(self._jobs) >= self.max_jobs and not self._evict_oldest():
            return None
        record = JobRecord(params, job_id, escrow_txid, client_node, signature)
        record.history.append((JobState.CREATED, now))
        self._jobs[job_id] = record
        self._open[job_id] = record
        self.on_change(job_id)
        return record

    def check_offer(self, raw_params: bytes, escrow_txid: bytes, client_node: bytes, signature: bytes) -> JobParams:
        """The job a job message offers, checked as add_job checks it; JobRejected if invalid or unsigned."""
        try:
            params = JobParams.from_bytes(raw_params)
        except ValueError as exc:
            raise JobRejected("bad-job-params", str(exc)) from None
        job_id = params.job_id()
        digest = job_offer_digest(job_id, escrow_txid, client_node)
        if not _signed_by(params.client_pubkey, signature, digest):
            raise JobRejected("bad-job-signature", f"job {job_id[::-1].hex()} is not signed by its client key")
        now = self._clock()
        if params.timestamp > now + MAX_FUTURE_SECONDS:
            raise JobRejected("job-time-too-new", f"job created at {params.timestamp}, our clock says {now:.0f}")
        return params

    def _evict_oldest(self) -> bool:
        """Drop the oldest job this node has no part in; False if every job is pinned.

        Pinned jobs are few (this node's own), so the walk past them is short.
        """
        victim = next((job_id for job_id in self._jobs if not self.pinned(job_id)), None)
        if victim is None:
            return False
        self._forget(victim)
        return True

    def _forget(self, job_id: bytes) -> None:
        del self._jobs[job_id]
        self._open.pop(job_id, None)
        self.on_change(job_id)

    def restore(self, record: JobRecord) -> bool:
        """Put back a record this node stored before a restart (it was checked when it first arrived).

        False, and nothing kept, when it is past the time the pool would have forgotten it.
        """
        if self.refund_time(record.params) + RETAIN_SECONDS < self._clock() or record.job_id != record.params.job_id():
            return False
        self._jobs[record.job_id] = record
        self._index(record)
        return True

    def open_jobs(self) -> list[JobRecord]:
        """Jobs still in play (not settled, slashed, refunded, expired or cancelled), oldest first, from the index."""
        return list(self._open.values())

    def _index(self, record: JobRecord) -> None:
        if record.state in _FINAL:
            self._open.pop(record.job_id, None)
        elif record.job_id in self._jobs:
            self._open.setdefault(record.job_id, record)

    def add_accept(self, job_id: bytes, node: bytes, signature: bytes) -> bool:
        """Record a node's claim on a known job; True if new. JobRejected for a bad signature.

        At most MAX_ACCEPTS_PER_JOB are kept: later ones are ignored, without blame (honest relays send them).
        """
        record = self._jobs.get(job_id)
        if record is None or node in record.accepted_by:
            return False
        if not _signed_by(node, signature, job_accept_digest(job_id, node)):
            raise JobRejected("bad-jobaccept-signature", f"accept of {job_id[::-1].hex()} is not signed by its node")
        if len(record.accepted_by) >= MAX_ACCEPTS_PER_JOB:
            return False
        record.accepted_by.append(node)
        record.accept_signatures[node] = signature
        self.advance(record, JobState.ACCEPTED)
        return True

    def add_testament(self, job_id: bytes, testament: TestamentRecord) -> bool:
        """Record a node's signed commitment for a known job; True if new.

        JobRejected for a testament its node did not sign (a forgery: only whoever sent it is to blame, since
        no honest node relays one) or whose commitment its Pn did not sign. A second testament from the
        same node (it equivocated; both are its own) and testaments beyond MAX_CLAIMS_PER_JOB are ignored.
        """
        record = self._jobs.get(job_id)
        if record is None or testament.node in record.testaments:
            return False
        if not _signed_by(testament.node, testament.node_signature, testament.digest(job_id)):
            raise JobRejected("forged-testament", f"testament for {job_id[::-1].hex()} is not signed by its node")
        commitment_digest = commitment_signature_digest(testament.commitment)
        if not _signed_by(testament.node_pubkey, testament.signature, commitment_digest):
            raise JobRejected("bad-testament-signature", f"testament for {job_id[::-1].hex()} is not signed by Pn")
        if len(record.testaments) >= MAX_CLAIMS_PER_JOB:
            return False
        record.testaments[testament.node] = testament
        self.advance(record, JobState.COMPLETED)
        return True

    def add_delivery(self, job_id: bytes, delivery: DeliveryRecord) -> DeliveryRecord | None:
        """Record a node's signed output for a job it holds a testament of; the record if new.

        JobRejected for a delivery its node did not sign (a forgery), a blob larger than the job allows, or
        one its node signed but not with the Pn of the testament it names. A delivery for a testament we do
        not hold (flooding reordered them, or the node equivocated and we hold its other testament) is
        ignored: an honest relay can send it.
        """
        record = self._jobs.get(job_id)
        if record is None:
            return None
        job = job_id[::-1].hex()
        digest = job_delivery_digest(job_id, delivery.node, delivery.stake_txid, delivery.sealed)
        if not _signed_by(delivery.node, delivery.node_signature, digest):
            raise JobRejected("forged-delivery", f"delivery for {job} is not signed by its node")
        testament = record.testaments.get(delivery.node)
        if testament is None or testament.stake_txid != delivery.stake_txid:
            return None
        if testament.node_pubkey in record.deliveries:
            return None
        if len(delivery.sealed) > MAX_DELIVERY_SIZE:  # the pool cannot count the prompt's tokens: the chain's bound
            raise JobRejected("bad-delivery-size", f"{len(delivery.sealed)} bytes, over {MAX_DELIVERY_SIZE}")
        if not _signed_by(testament.node_pubkey, delivery.signature, digest):
            raise JobRejected("bad-delivery-signature", f"delivery for {job} is not signed by its testament's Pn")
        delivery = replace(delivery, node_pubkey=testament.node_pubkey)
        record.deliveries[testament.node_pubkey] = delivery
        self.advance(record, JobState.DELIVERED)
        return delivery

    def record_delivery_tx(self, tx: Transaction) -> DeliveryRecord | None:
        """Note `tx` if it delivers a known testament's STAKE into its DELIVERED lock; the delivery if new.

        Only for transactions the mempool admitted or a block holds: their scripts were verified, so the
        blob is the one the DELIVERED lock commits to and Pn signed the move. A delivery known from the
        signed message keeps that record when it carried the same blob (its transaction id is noted);
        when it carried another, the chain's replaces it and is returned as new: only the blob on chain
        binds the node (it is what a bad-delivery proof takes), so a node cannot flood one blob and
        commit another.
        """
        record = self._jobs.get(tx.job_id)
        lock = match_job_lock(tx.outputs[0].script_pubkey) if record is not None and tx.outputs else None
        if record is None or lock is None or lock.delivery_hash is None or lock.job_id != record.job_id:
            return None
        stakes = {txin.prev_txid: txin for txin in tx.inputs}
        testament = next(
            (t for t in record.testaments.values() if t.node_pubkey == lock.node_pubkey and t.stake_txid in stakes),
            None,
        )
        blob = delivered_blob(stakes[testament.stake_txid].script_sig) if testament is not None else None
        if testament is None or blob is None or sha256(blob) != lock.delivery_hash:
            return None
        known = record.delivery_txids.get(lock.node_pubkey)
        record.delivery_txids[lock.node_pubkey] = tx.hash
        flooded = record.deliveries.get(lock.node_pubkey)
        if flooded is not None and flooded.sealed == blob:
            if known != tx.hash:
                self.on_change(record.job_id)
            return None
        delivery = DeliveryRecord(testament.node, lock.node_pubkey, blob, b"", testament.stake_txid)
        record.deliveries[lock.node_pubkey] = delivery
        self.advance(record, JobState.DELIVERED)
        return delivery

    def record_payment(self, tx: Transaction, published: bool = True) -> JobRecord | None:
        """Note `tx` if it pays a known job's escrow to a PAYOUT, and mark the job paid; its record if new.

        The one place a job becomes PAID: the client calls it when it signs a payment, the compute node
        when it accepts one (`published` False: only the two of them know it yet), every node when one
        reaches its mempool or a block.
        """
        record = self._escrow_spent_by(tx)
        payout = match_job_lock(tx.outputs[0].script_pubkey) if record is not None and tx.outputs else None
        if record is None or payout is None or not payout.is_payout or payout.job_id != record.job_id:
            return None
        key = payout.node_pubkey + payout.commitment
        known = record.payments.get(key)
        if known is not None and (known.seen_at is not None or not published):
            return None
        record.payments[key] = PaymentRecord(tx.hash, self._clock() if published else None)
        self.advance(record, JobState.PAID)
        return record

    def advance(self, record: JobRecord, state: JobState) -> bool:
        """Move the job to `state` as TRANSITIONS allows; True if it moved.

        A state reached before, or a late fact (LATE_FACTS) the job has moved past, changes nothing;
        any other move the table does not list raises IllegalTransition.
        """
        moved = not record.reached(state)
        if moved and state not in TRANSITIONS[record.state]:
            if state not in LATE_FACTS:
                raise IllegalTransition(f"job {record.job_id[::-1].hex()} cannot go from {record.state} to {state}")
            moved = False
        if moved:
            record.history.append((state, self._clock()))
            self._index(record)
        self.on_change(record.job_id)  # callers advance after changing the job, so it changed either way
        return moved

    def settle_block(self, txs: list[Transaction]) -> list[JobRecord]:
        """Close every known job whose escrow a mined transaction spends: settled (a payment) or refunded.

        A job this node slashed stays slashed: its payment is mined too, but the reward or stake came back.
        """
        closed = []
        for tx in txs:
            record = self._escrow_spent_by(tx)
            if record is None or record.reached(JobState.SLASHED):
                continue
            self.record_payment(tx)
            paid = any(payment.txid == tx.hash for payment in record.payments.values())
            try:
                if self.advance(record, JobState.SETTLED if paid else JobState.REFUNDED):
                    closed.append(record)
            except IllegalTransition:
                continue  # a reorganisation mined another spend of an escrow whose first one ended the job
        return closed

    def _escrow_spent_by(self, tx: Transaction) -> JobRecord | None:
        """The known job whose escrow `tx` spends, if any.

        The pool knows the escrow's transaction, not which of its outputs is the escrow, so it goes by what
        OP_CHECKJOBESCROWVERIFY lets an escrow spend be: a payment (output 0 this job's PAYOUT) or a refund (a
        lock time from the refund time on). Another spend of that transaction's outputs that carries the job
        id (its change funding a dispute's bond, say) leaves the job open.
        """
        record = self._jobs.get(tx.job_id)
        if record is None or not any(txin.prev_txid == record.escrow_txid for txin in tx.inputs):
            return None
        payout = match_job_lock(tx.outputs[0].script_pubkey) if tx.outputs else None
        pays = payout is not None and payout.is_payout and payout.job_id == record.job_id
        return record if pays or tx.lock_time >= self.refund_time(record.params) else None

    def refund_time(self, params: JobParams) -> int:
        """When the client may take the escrow back: the delivery deadline plus the dispute window."""
        return params.timestamp + params.timelock + self.dispute_window

    def prune(self) -> None:
        """Forget jobs RETAIN_SECONDS past their refund time, marking open ones expired on the way."""
        now = self._clock()
        for job_id, record in list(self._jobs.items()):
            refund = self.refund_time(record.params)
            if refund < now and record.state not in _FINAL:
                self.advance(record, JobState.EXPIRED)
            if refund + RETAIN_SECONDS < now:
                self._forget(job_id)


_FINAL = frozenset({JobState.SETTLED, JobState.SLASHED, JobState.REFUNDED, JobState.EXPIRED, JobState.CANCELLED})


def _signed_by(public_key: bytes, signature: bytes, digest: bytes) -> bool:
    """True if `signature` is valid for `digest` under `public_key`; a key off the curve signs nothing."""
    try:
        return PublicKey.from_bytes(public_key).verify(signature, digest)
    except ValueError:
        return False
