"""Which open job a free compute node takes next, and when (whitepaper 3.2, concurrent inference).

Every serving node sees every job and nothing assigns a job to one node, so three rules keep idle nodes
from all computing the same job:

- a job is not taken while another node's jobaccept for it is fresh: an accepter has `patience` for the
  job's max_tokens to publish its testament, then the job is open again (one more patience per accepter,
  since each later accepter took it only when the one before ran out). Node ids cost nothing, so only
  MAX_HOLDING_ACCEPTS accepters count, and no claim holds a job past the time a node needs to compute it
  before its deadline: throwaway accepts delay a job, they cannot starve it;
- a job with a testament is taken, unless the compute side found that testament's stake missing
  (`unbacked`): a testament under a fresh node key is free, its stake is not;
- a node waits `claim_delay` (a per-(node, job) hash fraction of CLAIM_SPREAD; none until it has seen
  another node claim a job for its models) before claiming and looks again: of idle nodes that see a job
  at the same instant, the one with the shortest delay claims it and the others see its jobaccept and
  pass. The same rank orders the oldest open jobs, so nodes that become free together start on different
  jobs rather than racing for the oldest one;
- two claims closer together than a jobaccept's trip still happen; the client settles them: it sends the
  job's private prompt to one accepter only (camelid.node.jobs.prompts), and a claimant without the prompt
  PROMPT_WAIT after its claim leaves the job before staking, so one testament is published, not two.

`closed` holds the conditions that, once true, stay true (taken, declined, ours, past the time to take it,
a testament whose stake showed): the claim queue (camelid.node.jobs.claim_queue) drops such a job for
good, and keeps the rest for `is_open` to judge at each look.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from camelid.chain.jobpool import JobRecord, JobState
from camelid.crypto.hashes import sha256

PROMPT_WAIT = 3.0
"""Seconds a claimant waits after its jobaccept for the client's private prompt, then leaves the job: the
accept's trip to the client and the prompt's trip back, each up to 0.5 s (a relay over several hops, or test
nodes on a loaded 2-core machine, which overran 0.1 s trips), with room for a busy client. Part of every
accepter's patience, so no rival takes the job meanwhile."""
CLAIM_SPREAD = 0.25
"""Seconds over which idle nodes' claim delays spread: well above a jobaccept's trip between nodes."""
MAX_CANDIDATES = 8
"""The oldest open jobs a free node chooses among by rank (a bound on how far it strays from oldest-first)."""
ESCROW_RECHECK = 0.05
"""Seconds between looks for an escrow its job message outran (a transaction's relay takes one more round trip)."""
PATIENCE_BASE = 4.0 + PROMPT_WAIT
"""Seconds an accepter has for what does not depend on the token count: the client's prompt, escrow look-up,
stake, testament."""
PATIENCE_PER_TOKEN = 0.1
"""Seconds per max_tokens an accepter has to generate: 10 tokens/s, below any CPU the real model runs on."""

MAX_HOLDING_ACCEPTS = 2
"""Accepters whose patience adds up to how long a job is held: an honest rival, and one more."""
HOLD_SLACK = 2.0
"""Seconds before the last moment a node could still take a job at which any claim on it runs out."""

_OPEN_STATES = frozenset({JobState.CREATED, JobState.ACCEPTED, JobState.COMPLETED})


def claim_rank(node_id: bytes, job_id: bytes) -> float:
    """A fraction in [0, 1) fixed per (node, job), spread uniformly across nodes; any node can compute anyone's."""
    return int.from_bytes(sha256(node_id + job_id)[:8], "big") / 2**64


def patience(max_tokens: int) -> float:
    """How long a job's accepter may take to publish its testament; also the time left a node needs to take it."""
    return PATIENCE_BASE + PATIENCE_PER_TOKEN * max_tokens


class JobScheduler:
    """This node's view of which pool jobs are open to it; `tried` holds the jobs it took (never twice)."""

    def __init__(self, node_id: bytes, serves: Callable[[bytes], bool]) -> None:
        """`serves(model_id)`: whether this node can compute jobs for that model."""
        self._node_id = node_id
        self.serves = serves
        self.tried: set[bytes] = set()
        self._rival_seen = False  # another node has claimed a job for a model we serve: delays spread us apart
        self.unbacked: set[tuple[bytes, bytes]] = set()  # (job id, node) of testaments whose stake never showed
        self.backed: set[bytes] = set()  # jobs with a testament whose stake showed: taken for good

    def rank(self, job_id: bytes) -> float:
        return claim_rank(self._node_id, job_id)

    def claim_delay(self, job_id: bytes, jobs: Iterable[JobRecord]) -> float:
        """How long to wait before claiming `job_id`: rank x CLAIM_SPREAD once any other node has been seen
        claiming a job (in `jobs`, the pool) for a model we serve; nothing before, since with nobody to spread
        apart from the wait is only latency (the client's choice of one accepter still settles a first collision)."""
        if not self._rival_seen:
            self._rival_seen = any(self.rival_in(record) for record in jobs)
        return self.rank(job_id) * CLAIM_SPREAD if self._rival_seen else 0.0

    def rival_in(self, record: JobRecord) -> bool:
        """Whether another node claimed a job for a model we serve: `record`, or one seen before (see claim_delay)."""
        self._rival_seen = self._rival_seen or (
            self.serves(record.params.model_id) and any(node != self._node_id for node in record.accepted_by)
        )
        return self._rival_seen

    def is_open(self, record: JobRecord, now: float) -> bool:
        """Whether this node may take `record` now: see the module docstring."""
        return (
            not self.closed(record, now)
            and not self._backed(record)
            and not _held_by_another(record, now)
            and self.serves(record.params.model_id)
        )

    def closed(self, record: JobRecord, now: float) -> bool:
        """Whether this node will never take `record`: each condition here, once true, stays true (a testament
        not yet found backed, another node's claim and a model we do not serve yet can all change)."""
        params = record.params
        return (
            record.state not in _OPEN_STATES
            or record.job_id in self.backed
            or record.job_id in self.tried
            or record.client_node == self._node_id
            or now + patience(params.max_tokens) > params.timestamp + params.timelock
        )

    def choose(
        self, jobs: Iterable[JobRecord], now: float, pay: Callable[[JobRecord], float] | None = None
    ) -> JobRecord | None:
        """Of the MAX_CANDIDATES oldest open jobs (`jobs` oldest first, as the pool lists them), the
        best-paying by `pay` (reward per token), then the best-ranked."""
        candidates: list[JobRecord] = []
        for record in jobs:
            if self.is_open(record, now):
                candidates.append(record)
                if len(candidates) == MAX_CANDIDATES:
                    break
        def order(record: JobRecord) -> tuple[float, float]:
            return (-pay(record) if pay else 0.0, self.rank(record.job_id))

        return min(candidates, key=order, default=None)

    def next_reopening(self, jobs: Iterable[JobRecord], now: float) -> float | None:
        """The earliest time after `now` at which another node's claim on a job without a testament runs out."""
        times = (
            _claim_ends(record)
            for record in jobs
            if record.state in _OPEN_STATES and not self._backed(record) and record.job_id not in self.tried
        )
        return min((at for at in times if at is not None and at > now), default=None)

    def claim(self, record: JobRecord) -> None:
        """Record that this node takes `record` now (it broadcasts its jobaccept next)."""
        self.tried.add(record.job_id)

    def _backed(self, record: JobRecord) -> bool:
        """Whether a testament of the job may have a stake behind it (not yet found missing)."""
        return any((record.job_id, node) not in self.unbacked for node in record.testaments)

    def forget(self, live: Iterable[bytes]) -> None:
        """Keep `tried`, the claims, `unbacked` and `backed` to the jobs still in the pool (`live`): as bounded
        as the pool."""
        live = set(live)
        self.unbacked = {(job_id, node) for job_id, node in self.unbacked if job_id in live}
        self.tried.intersection_update(live)
        self.backed.intersection_update(live)


def _held_by_another(record: JobRecord, now: float) -> bool:
    ends = _claim_ends(record)
    return ends is not None and now < ends


def _claim_ends(record: JobRecord) -> float | None:
    """When the accepters have run out of patience (one patience each, from the first accept, for at most
    MAX_HOLDING_ACCEPTS of them), and never later than HOLD_SLACK before the last moment a node could still
    compute the job by its deadline; None if unclaimed."""
    first_accept = next((at for state, at in record.history if state == JobState.ACCEPTED), None)
    if first_accept is None:
        return None
    params = record.params
    held = first_accept + min(len(record.accepted_by), MAX_HOLDING_ACCEPTS) * patience(params.max_tokens)
    return min(held, params.timestamp + params.timelock - patience(params.max_tokens) - HOLD_SLACK)
