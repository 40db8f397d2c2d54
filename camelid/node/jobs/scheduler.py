"""Which open job a free compute node takes next, and when (whitepaper 3.2, concurrent inference).

Every serving node sees every job and nothing assigns a job to one node, so three rules keep idle nodes
from all computing the same job:

- a job is not taken while another node's jobaccept for it is fresh: an accepter has `patience` for the
  job's max_tokens to publish its testament, then the job is open again (one more patience per accepter,
  since each later accepter took it only when the one before ran out);
- a node waits `claim_delay` (a per-(node, job) hash fraction of CLAIM_SPREAD; none until it has seen
  another node claim a job for its models) before claiming and looks again: of idle nodes that see a job
  at the same instant, the one with the shortest delay claims it and the others see its jobaccept and
  pass. The same rank orders the oldest open jobs, so nodes that become free together start on different
  jobs rather than racing for the oldest one;
- two claims closer together than a jobaccept's trip still happen, so before staking a claimant waits
  until CONTEST_WINDOW after its claim and leaves the job if a node that accepted it since ranks first
  (`rival_first`); every claimant applies the same rule, so one testament is published, not two.

A node looks for work after every job, block and claim that runs out, so that look must not cost a walk
of the pool (issue 15 measured 0.84 s per look at 4,000 jobs, every 50 ms). ClaimQueue holds the jobs the
node may yet take, oldest first: a job closed to it for good leaves the queue when a look first passes it,
and a job waiting for its escrow (or its escrow's confirmations) is set aside until a transaction (or a
block) arrives. A look so passes only the jobs that other nodes hold and MAX_CANDIDATES open ones.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from camelid.chain.jobpool import JobRecord, JobState
from camelid.crypto.hashes import sha256

CONTEST_WINDOW = 0.2
"""Seconds after its claim a node waits, before staking, for a better-ranked rival's jobaccept (see `rival_first`)."""
CLAIM_SPREAD = 0.25
"""Seconds over which idle nodes' claim delays spread: well above a jobaccept's trip between nodes."""
MAX_CANDIDATES = 8
"""The oldest open jobs a free node chooses among by rank (a bound on how far it strays from oldest-first)."""
ESCROW_RECHECK = 0.05
"""Seconds between looks for an escrow its job message outran (a transaction's relay takes one more round trip)."""
PATIENCE_BASE = 4.0
"""Seconds an accepter has for what does not depend on the token count: escrow look-up, stake, testament."""
PATIENCE_PER_TOKEN = 0.1
"""Seconds per max_tokens an accepter has to generate: 10 tokens/s, below any CPU the real model runs on."""

_OPEN_STATES = frozenset({JobState.CREATED, JobState.ACCEPTED})


def claim_rank(node_id: bytes, job_id: bytes) -> float:
    """A fraction in [0, 1) fixed per (node, job), spread uniformly across nodes; any node can compute anyone's."""
    return int.from_bytes(sha256(node_id + job_id)[:8], "big") / 2**64


@dataclass(frozen=True)
class _Claim:
    at: float
    earlier: frozenset[bytes]  # accepters whose patience had run out when we claimed: no rivals of ours


def patience(max_tokens: int) -> float:
    """How long a job's accepter may take to publish its testament; also the time left a node needs to take it."""
    return PATIENCE_BASE + PATIENCE_PER_TOKEN * max_tokens


class JobScheduler:
    """This node's view of which pool jobs are open to it; `tried` holds the jobs it took (never twice)."""

    def __init__(self, node_id: bytes, serves: Callable[[bytes], bool]) -> None:
        """`serves(model_id)`: whether this node can compute jobs for that model."""
        self._node_id = node_id
        self._serves = serves
        self.tried: set[bytes] = set()
        self._claims: dict[bytes, _Claim] = {}
        self._rival_seen = False  # another node has claimed a job for a model we serve: delays spread us apart

    def rank(self, job_id: bytes) -> float:
        return claim_rank(self._node_id, job_id)

    def claim_delay(self, job_id: bytes, jobs: Iterable[JobRecord]) -> float:
        """How long to wait before claiming `job_id`: rank x CLAIM_SPREAD once any other node has been seen
        claiming a job (in `jobs`, the pool) for a model we serve; nothing before, since with nobody to spread
        apart from the wait is only latency (the contest window still settles a first collision)."""
        if not self._rival_seen:
            self._rival_seen = any(self.rival_in(record) for record in jobs)
        return self.rank(job_id) * CLAIM_SPREAD if self._rival_seen else 0.0

    def rival_in(self, record: JobRecord) -> bool:
        """Whether another node claimed `record`, a job for a model we serve (remembered: see claim_delay)."""
        self._rival_seen = self._rival_seen or (
            self._serves(record.params.model_id) and any(node != self._node_id for node in record.accepted_by)
        )
        return self._rival_seen

    def is_open(self, record: JobRecord, now: float) -> bool:
        """Whether this node may take `record` now: see the module docstring."""
        return not self.closed(record, now) and not _held_by_another(record, now)

    def closed(self, record: JobRecord, now: float) -> bool:
        """Whether this node will never take `record`: every condition here only ever becomes true."""
        params = record.params
        return (
            record.state not in _OPEN_STATES
            or bool(record.testaments)
            or record.job_id in self.tried
            or record.client_node == self._node_id
            or self._node_id in record.accepted_by
            or now + patience(params.max_tokens) > params.timestamp + params.timelock
            or not self._serves(params.model_id)
        )

    def choose(self, jobs: Iterable[JobRecord], now: float) -> JobRecord | None:
        """Of the MAX_CANDIDATES oldest open jobs (`jobs` oldest first), the best-ranked."""
        candidates: list[JobRecord] = []
        for record in jobs:
            if self.is_open(record, now):
                candidates.append(record)
                if len(candidates) == MAX_CANDIDATES:
                    break
        return min(candidates, key=lambda record: self.rank(record.job_id), default=None)

    def next_reopening(self, jobs: Iterable[JobRecord], now: float) -> float | None:
        """The earliest time after `now` at which another node's claim on a job without a testament runs out."""
        times = (
            _claim_ends(record)
            for record in jobs
            if record.state in _OPEN_STATES and not record.testaments and record.job_id not in self.tried
        )
        return min((at for at in times if at is not None and at > now), default=None)

    def claim(self, record: JobRecord, now: float) -> None:
        """Record that this node takes `record` now (it broadcasts its jobaccept next)."""
        self.tried.add(record.job_id)
        self._claims[record.job_id] = _Claim(now, frozenset(record.accepted_by))

    def contest_ends(self, job_id: bytes) -> float:
        return self._claims[job_id].at + CONTEST_WINDOW

    def rival_first(self, record: JobRecord) -> bytes | None:
        """The node that keeps a job we claimed at the same moment as it did: the lowest claim_rank among the
        accepters since our claim and us; None if that is us. Every claimant applies the same rule to the
        same accepts, so all but one of them leave the job before staking."""
        rivals = set(record.accepted_by) - self._claims[record.job_id].earlier - {self._node_id}
        first = min(rivals, key=lambda node: claim_rank(node, record.job_id), default=None)
        return first if first is not None and claim_rank(first, record.job_id) < self.rank(record.job_id) else None

    def forget(self, live: Iterable[bytes]) -> None:
        """Keep `tried` and the claims to the jobs still in the pool (`live`): as bounded as the pool."""
        self.tried.intersection_update(live)
        self._claims = {job_id: claim for job_id, claim in self._claims.items() if job_id in self.tried}


class ClaimQueue:
    """The jobs this node may yet take, oldest first, with those waiting for an escrow set aside (module docstring)."""

    def __init__(self, scheduler: JobScheduler, live: Callable[[bytes], bool]) -> None:
        """`live(job_id)`: whether the pool still holds the job (an evicted one is never taken)."""
        self._scheduler = scheduler
        self._live = live
        self._jobs: OrderedDict[bytes, JobRecord] = OrderedDict()
        self._until_tx: dict[bytes, JobRecord] = {}  # escrow not found yet
        self._until_block: dict[bytes, JobRecord] = {}  # escrow short of its confirmations

    def __len__(self) -> int:
        return len(self._jobs) + len(self._until_tx) + len(self._until_block)

    def jobs(self) -> Iterator[JobRecord]:
        """The queued jobs, oldest first (not those set aside)."""
        return iter(self._jobs.values())

    def add(self, record: JobRecord, now: float) -> None:
        if not self._scheduler.closed(record, now):
            self._jobs[record.job_id] = record

    def choose(self, now: float) -> JobRecord | None:
        """JobScheduler.choose over the queue, dropping the jobs it finds closed on the way."""
        closed: list[bytes] = []

        def walk() -> Iterator[JobRecord]:
            for job_id, record in self._jobs.items():
                if not self._live(job_id) or self._scheduler.closed(record, now):
                    self._scheduler.rival_in(record)  # a job leaving the queue may be the first sign of a rival
                    closed.append(job_id)
                else:
                    yield record

        choice = self._scheduler.choose(walk(), now)
        for job_id in closed:
            del self._jobs[job_id]
        return choice

    def set_aside(self, record: JobRecord, until_block: bool) -> None:
        """Leave `record` out of looks until the next `take_back` (of a block with `until_block`, else a tx)."""
        self._jobs.pop(record.job_id, None)
        (self._until_block if until_block else self._until_tx)[record.job_id] = record

    def waiting_for_tx(self) -> bool:
        return bool(self._until_tx)

    def take_back(self, block: bool) -> None:
        """Queue again, ahead of the rest (they came first), the jobs set aside until a transaction, and with
        `block` those set aside until a block."""
        returning = list(self._until_tx.values()) + (list(self._until_block.values()) if block else [])
        self._until_tx.clear()
        if block:
            self._until_block.clear()
        for record in reversed(sorted(returning, key=lambda record: record.history[0][1])):
            self._jobs[record.job_id] = record
            self._jobs.move_to_end(record.job_id, last=False)


def _held_by_another(record: JobRecord, now: float) -> bool:
    ends = _claim_ends(record)
    return ends is not None and now < ends


def _claim_ends(record: JobRecord) -> float | None:
    """When the accepters have run out of patience (one patience each, from the first accept); None if unclaimed."""
    first_accept = next((at for state, at in record.history if state == JobState.ACCEPTED), None)
    if first_accept is None:
        return None
    return first_accept + len(record.accepted_by) * patience(record.params.max_tokens)
