"""Job messages from peers, before they reach the pool: a rate per peer, and no job without its escrow (issue 15).

A job message costs its sender nothing, and every node that keeps one stores it and relays it to all
its peers. So a job is taken into the pool, and relayed, only once its escrow -- a transaction
paying the job's ESCROW script, which costs the client a fee and locks its coins -- is in our mempool or
chain. A job whose escrow has not come yet (flooding may deliver the job message first) waits, at most
MAX_WAITING_JOBS of them holding MAX_WAITING_BYTES of job parameters, and for ESCROW_WAIT seconds (longer
while the node is catching up the chain, whose blocks may hold the escrow: a node that comes back online
gets the jobs in play from its peers before their blocks), and goes into the pool the moment the escrow
does. Each peer may send JOBS_PER_SECOND job messages on average (bursts of JOB_BURST, enough for the
catch-up a node sends a new peer); more are dropped without blame, since a relay may be forwarding
another node's burst.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from camelid.chain.jobpool import JobPool, JobRecord, JobRejected
from camelid.core.fill import Fill, Fills
from camelid.core.job import JobParams
from camelid.core.transaction import Transaction
from camelid.node.jobs.contract import JobTerms
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.limits import KeyedBuckets
from camelid.p2p.messages import JobMessage

log = logging.getLogger(__name__)

JOBS_PER_SECOND = 2.0
"""Job messages one peer may send per second on average."""
JOB_BURST = 200.0
"""Job messages one peer may send at once: a new peer's catch-up (the jobs in play) fits."""
MAX_WAITING_JOBS = 1_000
"""Jobs held for their escrow at once (the oldest go first): about as many as a few blocks of escrows."""
MAX_WAITING_BYTES = 16 << 20
"""Bytes of job parameters held for escrows at once (the oldest go first). Since jobs carry no prompt (a 32-byte
commitment instead), MAX_WAITING_JOBS alone keeps them under 415 KB; before, the free wait held 1,000 prompts of
64 KiB, about 130 MB as message and parsed copy."""
ESCROW_WAIT = 30.0
"""Seconds a job is held for its escrow: an escrow's relay is one inv round trip behind its job message."""
PEERS_TRACKED = 1_000
"""Peers whose job rate is tracked at once (more than a node's connections)."""
T = TypeVar("T")


@dataclass(frozen=True)
class _Waiting:
    message: JobMessage
    params: JobParams
    peer_id: int
    until: float


class JobIntake:
    """Turns a peer's job message into a pool record once its escrow is seen; `admitted` relays and offers it."""

    def __init__(
        self,
        pool: JobPool,
        dispute_window: int,
        escrow_seen: Callable[[bytes, bytes], Awaitable[bool]],
        admitted: Callable[[JobRecord, JobMessage, int], None],
        clock: Callable[[], float] = time.monotonic,
        catching_up: Callable[[], bool] = lambda: False,
    ) -> None:
        """`escrow_seen(txid, script)`: whether our mempool or chain holds `txid` with an output paying `script`;
        `admitted(record, message, peer_id)`: called for each job taken into the pool; `catching_up()`: whether
        blocks are still to download (no job expires meanwhile: MAX_WAITING_JOBS still bounds them)."""
        self._pool = pool
        self._dispute_window = dispute_window
        self._escrow_seen = escrow_seen
        self._admitted = admitted
        self._clock = clock
        self._catching_up = catching_up
        self._rates = KeyedBuckets(JOBS_PER_SECOND, JOB_BURST, PEERS_TRACKED, clock)
        self._waiting: OrderedDict[bytes, _Waiting] = OrderedDict()  # by Job ID, oldest first
        self._by_escrow: dict[bytes, set[bytes]] = {}  # escrow txid -> the waiting jobs naming it
        self._waiting_bytes = 0  # of the waiting jobs' parameters
        self.dropped = 0  # job messages over their peer's rate (for logs and tests)

    def waiting(self) -> int:
        return len(self._waiting)

    def fill(self) -> Fills:
        """Jobs waiting for their escrow, and the peers whose job rate is tracked."""
        return {
            "jobs_awaiting_escrow": Fill(len(self._waiting), MAX_WAITING_JOBS, self._waiting_bytes, MAX_WAITING_BYTES),
            "job_rate_peers": Fill(len(self._rates), self._rates.capacity),
        }

    async def on_job(self, peer_id: int, message: JobMessage) -> None:
        """A job message from peer `peer_id`: ProtocolViolation if it is one no honest node sends."""
        if not self._rates.take(peer_id):
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.info("peer %d sends jobs faster than %.0f/s; %d dropped so far", peer_id, JOBS_PER_SECOND,
                         self.dropped)
            return
        try:
            params = JobParams.from_bytes(message.params)
        except ValueError as exc:
            raise ProtocolViolation(f"bad-job: bad-job-params: {exc}") from None
        job_id = params.job_id()
        if self._pool.get(job_id) is not None or job_id in self._waiting:
            return
        checked(lambda: self._pool.check_offer(message.params, message.escrow_txid, message.client_node,
                                               message.signature))
        if await self._escrow_seen(message.escrow_txid, self._escrow_script(params)):
            self._admit(message, peer_id)
            return
        self._expire()
        self._waiting[job_id] = _Waiting(message, params, peer_id, self._clock() + ESCROW_WAIT)
        self._by_escrow.setdefault(message.escrow_txid, set()).add(job_id)
        self._waiting_bytes += len(message.params)
        while len(self._waiting) > MAX_WAITING_JOBS or self._waiting_bytes > MAX_WAITING_BYTES:
            self._drop(next(iter(self._waiting)))

    def on_transaction(self, tx: Transaction) -> None:
        """A transaction reached our mempool or chain: the escrow some waiting jobs needed, perhaps.

        Several jobs may name one transaction (a forger can copy an escrow's txid into a job of its own):
        each is taken only if the transaction pays its own ESCROW script.
        """
        scripts = {out.script_pubkey for out in tx.outputs}
        for job_id in list(self._by_escrow.get(tx.hash, ())):
            waiting = self._waiting[job_id]
            if self._escrow_script(waiting.params) not in scripts:
                continue
            self._drop(job_id)
            try:
                self._admit(waiting.message, waiting.peer_id)
            except ProtocolViolation as exc:  # checked on arrival; only the pool's clock can differ now
                log.info("job waiting for escrow %s dropped: %s", tx.txid(), exc)

    def _admit(self, message: JobMessage, peer_id: int) -> None:
        record = checked(
            lambda: self._pool.add_job(message.params, message.escrow_txid, message.client_node, message.signature)
        )
        if record is not None:
            self._admitted(record, message, peer_id)

    def _expire(self) -> None:
        if self._catching_up():
            return
        now = self._clock()
        while self._waiting and (oldest := next(iter(self._waiting.items())))[1].until < now:
            self._drop(oldest[0])

    def _drop(self, job_id: bytes) -> None:
        message = self._waiting.pop(job_id).message
        self._waiting_bytes -= len(message.params)
        escrow = message.escrow_txid
        named = self._by_escrow[escrow]
        named.discard(job_id)
        if not named:
            del self._by_escrow[escrow]

    def _escrow_script(self, params: JobParams) -> bytes:
        return JobTerms(params, self._dispute_window).escrow_script


def checked(add: Callable[[], T]) -> T:
    """`add()`, its JobRejected turned into the ProtocolViolation that disconnects the sender."""
    try:
        return add()
    except JobRejected as exc:
        raise ProtocolViolation(f"bad-job: {exc}") from None
