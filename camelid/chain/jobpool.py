"""The job pool: every job a full node has seen on the network, with its state history (whitepaper 2.4).

Jobs arrive as flooded P2P messages (job, jobaccept, testament) and leave through the chain
(the payment mined: settled). Every transition is recorded with its time, so an operator can
see where a job stopped. The pool is bounded in count and age: a job is kept until its refund
time (t0 + timelock + dispute window) plus RETAIN_SECONDS, and the oldest go first when it is
full. A message that is malformed or carries a bad signature raises JobRejected, which the P2P
layer turns into a protocol violation; one that is merely late (an expired job, a testament
for a job we never saw) is ignored without blame, since honest relays can send those.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from camelid.core.job import JobParams
from camelid.core.jobscripts import commitment_signature_digest
from camelid.core.transaction import Transaction
from camelid.crypto.hashes import sha256d
from camelid.crypto.keys import PublicKey

MAX_JOBS = 10_000
RETAIN_SECONDS = 24 * 3600
"""How long a job stays after its refund time, for getjob and for matching late chain events."""
MAX_FUTURE_SECONDS = 2 * 3600
"""A job created further ahead of our clock than this is refused (as Bitcoin's block time limit)."""
MAX_CLAIMS_PER_JOB = 16
"""Accepts and testaments kept per job: enough for competing nodes, too few to flood memory."""

_OFFER_TAG = b"camelid/job-offer/v1"
_ACCEPT_TAG = b"camelid/job-accept/v1"


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


@dataclass(frozen=True)
class TestamentRecord:
    """A node's signed commitment to its output and the stake transaction behind it."""

    __test__ = False  # not a pytest test class

    node: bytes
    node_pubkey: bytes
    commitment: bytes
    signature: bytes
    stake_txid: bytes


@dataclass
class JobRecord:
    params: JobParams
    job_id: bytes
    escrow_txid: bytes
    client_node: bytes
    history: list[tuple[JobState, float]] = field(default_factory=list)
    accepted_by: list[bytes] = field(default_factory=list)
    testaments: dict[bytes, TestamentRecord] = field(default_factory=dict)

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
            "max_tokens": p.max_tokens,
            "seed": p.seed,
            "temperature": p.temperature_milli / 1000,
            "timestamp": p.timestamp,
            "timelock": p.timelock,
            "escrow_txid": self.escrow_txid[::-1].hex(),
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
        }


class JobPool:
    """Jobs by Job ID, oldest first; not thread-safe (the node uses it from its event loop)."""

    def __init__(self, dispute_window: int, max_jobs: int = MAX_JOBS, clock: Callable[[], float] = time.time) -> None:
        self.dispute_window = dispute_window
        self.max_jobs = max_jobs
        self._clock = clock
        self._jobs: OrderedDict[bytes, JobRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: bytes) -> JobRecord | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[JobRecord]:
        return list(self._jobs.values())

    def add_job(self, raw_params: bytes, escrow_txid: bytes, client_node: bytes, signature: bytes) -> JobRecord | None:
        """Record a new job; None if it is known already or expired. JobRejected if invalid or unsigned."""
        try:
            params = JobParams.from_bytes(raw_params)
        except ValueError as exc:
            raise JobRejected("bad-job-params", str(exc)) from None
        job_id = params.job_id()
        if job_id in self._jobs:
            return None
        digest = job_offer_digest(job_id, escrow_txid, client_node)
        if not _signed_by(params.client_pubkey, signature, digest):
            raise JobRejected("bad-job-signature", f"job {job_id[::-1].hex()} is not signed by its client key")
        now = self._clock()
        if params.timestamp > now + MAX_FUTURE_SECONDS:
            raise JobRejected("job-time-too-new", f"job created at {params.timestamp}, our clock says {now:.0f}")
        if self.refund_time(params) + RETAIN_SECONDS < now:
            return None
        self.prune()
        while len(self._jobs) >= self.max_jobs:
            self._jobs.popitem(last=False)
        record = JobRecord(params, job_id, escrow_txid, client_node)
        record.history.append((JobState.CREATED, now))
        self._jobs[job_id] = record
        return record

    def add_accept(self, job_id: bytes, node: bytes, signature: bytes) -> bool:
        """Record a node's claim on a known job; True if new. JobRejected for a bad signature."""
        record = self._jobs.get(job_id)
        if record is None or node in record.accepted_by or len(record.accepted_by) >= MAX_CLAIMS_PER_JOB:
            return False
        if not _signed_by(node, signature, job_accept_digest(job_id, node)):
            raise JobRejected("bad-jobaccept-signature", f"accept of {job_id[::-1].hex()} is not signed by its node")
        record.accepted_by.append(node)
        self.advance(record, JobState.ACCEPTED)
        return True

    def add_testament(self, job_id: bytes, testament: TestamentRecord) -> bool:
        """Record a node's signed commitment for a known job; True if new. JobRejected for a bad signature."""
        record = self._jobs.get(job_id)
        if record is None or testament.node in record.testaments or len(record.testaments) >= MAX_CLAIMS_PER_JOB:
            return False
        digest = commitment_signature_digest(testament.commitment)
        if not _signed_by(testament.node_pubkey, testament.signature, digest):
            raise JobRejected("bad-testament-signature", f"testament for {job_id[::-1].hex()} is not signed")
        record.testaments[testament.node] = testament
        self.advance(record, JobState.COMPLETED)
        return True

    def advance(self, record: JobRecord, state: JobState) -> bool:
        """Append `state` to the job's history unless it was reached before; True if appended."""
        if record.reached(state):
            return False
        record.history.append((state, self._clock()))
        return True

    def settle_block(self, txs: list[Transaction]) -> list[JobRecord]:
        """Mark settled every known job whose escrow a mined transaction spends; the jobs settled.

        A job this node slashed stays slashed: its payment is mined too, but the reward came back.
        """
        settled = []
        for tx in txs:
            record = self._jobs.get(tx.job_id)
            if record is None or record.reached(JobState.SLASHED):
                continue
            if not any(txin.prev_txid == record.escrow_txid for txin in tx.inputs):
                continue
            if self.advance(record, JobState.SETTLED):
                settled.append(record)
        return settled

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
                del self._jobs[job_id]


_FINAL = frozenset({JobState.SETTLED, JobState.SLASHED, JobState.REFUNDED, JobState.EXPIRED, JobState.CANCELLED})


def _signed_by(public_key: bytes, signature: bytes, digest: bytes) -> bool:
    """True if `signature` is valid for `digest` under `public_key`; a key off the curve signs nothing."""
    try:
        return PublicKey.from_bytes(public_key).verify(signature, digest)
    except ValueError:
        return False
