"""What the client and compute roles of the job service share (whitepaper 2.4, docs/jobs-design.md).

JobContext holds the chain, the job pool, the peer manager, the wallets and the llama.cpp workers, and the
chain look-ups and background tasks both roles use; each role gets it instead of reaching into the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from camelid.chain.errors import TxRejected
from camelid.chain.jobpool import DeliveryRecord, JobPool, TestamentRecord
from camelid.compute.worker_client import EngineUnavailable, EngineWorker
from camelid.core.job import JobParams
from camelid.core.script import p2pkh_script
from camelid.core.transaction import OutPoint, Transaction, TxOut
from camelid.crypto.hashes import hash160
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.contract import JobSigner, JobTerms, Spent
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.messages import JobDelivery, JobTestament
from camelid.p2p.schema import Message
from camelid.wallet.errors import WalletError

if TYPE_CHECKING:
    from camelid.node.chain_service import ChainService
    from camelid.node.compute_service import ComputeService
    from camelid.node.model_service import ModelService
    from camelid.node.wallet_service import WalletService
    from camelid.p2p.manager import PeerManager
    from camelid.p2p.messages import Directed

log = logging.getLogger(__name__)

STAKE_MULTIPLE = 1
"""Stake = reward x this: a cheating node loses as much as it hoped to earn (jobs-design "Still open" 1)."""
SEEN_WAIT = 15.0
"""Seconds to wait for an escrow or stake transaction that a job message outran."""
POLL = 0.25
RELEASE_PATIENCE = 3600
"""Seconds past its release time we keep trying to take back an output (then it was taken by a fraud proof)."""
MAX_OUTPUTS_SEARCHED = 4
"""A confirmed escrow or stake is looked for among its transaction's first outputs (ours have two: it and change)."""
RELEASE_FEE = 10_000
"""Fee of a one-input time-locked spend (release, reclaim, refund, non-delivery claim): ~30 per byte."""
DELIVERY_FEE = 40_000
"""Fee of a delivery transaction (up to ~9.6 KB, a full sealed output in its scriptSig): ~4 per byte, under
JOB_PAYOUT_FEE_CAP, which is what the STAKE's delivery branch lets its DELIVERED output lose."""
ENGINE_PATIENCE = 120.0
"""Seconds a client's check waits for a crashed llama.cpp worker to come back before it gives the check up."""
TIMED_RETRY = frozenset({"non-final", "non-BIP68-final", "job-dispute-window", "bad-txns-inputs-missingorspent"})
"""Mempool refusals of a time-locked spend that only time (or a parent reaching the chain) cures; "non-BIP68-final":
a relative lock (a GAME's timeout branch) not yet old enough."""


def delivery_margin(dispute_window: int) -> int:
    """Median-time seconds before D from which a compute node no longer starts a delivery: half a dispute
    window (300 s on mainnet, about 2.5 blocks of median-time advance; 2 s on regtest), so that a delivery
    started before it is mined while the median time past is still before D."""
    return max(1, dispute_window // 2)


@dataclass(frozen=True)
class TimedSpend:
    """A job output this node may take through a time-locked branch: where it is, from when, and how to spend it."""

    job_id: bytes
    spent: Spent
    lock_time: int
    build: Callable[[bytes, JobSigner], Transaction]  # (pay-to script, the wallet) -> the signed spend


@dataclass(frozen=True)
class Located:
    """Where a job output is: its index and value, how deep its transaction is (0: the mempool), and
    the pool transaction that already spends it, if any."""

    index: int
    value: int
    confirmations: int
    spent_by: bytes | None


class JobContext:
    """The node's chain, job pool, peers, wallets and engine, as the client and compute roles both use them."""

    def __init__(
        self,
        chain: ChainService,
        pool: JobPool,
        manager: PeerManager,
        node_key: PrivateKey,
        models: ModelService,
        wallets: WalletService | None,
        compute: ComputeService,
    ) -> None:
        self.chain = chain
        self.pool = pool
        self.manager = manager
        self.node_key = node_key
        self.node_id = node_key.public_key.to_bytes()
        self.models = models
        self.wallets = wallets
        self.compute = compute
        self._tasks: set[asyncio.Task[object]] = set()
        self._arrivals: dict[bytes, asyncio.Event] = {}

    def tx_arrived(self, txid: bytes) -> None:
        """TxAccepted: wake a wait_for_output waiting on `txid` at once instead of at its next poll.

        A job message or testament outruns its transaction by one inv/getdata round trip, so the
        first look always misses; polling alone cost every job a POLL (bench/job_overhead_bench.py).
        """
        arrival = self._arrivals.get(txid)
        if arrival is not None:
            arrival.set()

    def median_time_past(self) -> int:
        """The tip's median time past: what the next block's lock times and job deadlines are judged against.
        Chain thread only (ChainService.call)."""
        chainstate = self.chain.chainstate
        return chainstate.median_time_past(chainstate.tip)

    def terms(self, params: JobParams) -> JobTerms:
        """The job's contract terms on this network."""
        return JobTerms(params, self.chain.params.dispute_window)

    def require_wallets(self) -> WalletService:
        if self.wallets is None:
            raise ValueError("jobs need a wallet (the node runs with -disablewallet)")
        return self.wallets

    async def engine_for(self, model_id: bytes) -> EngineWorker | None:
        """The llama.cpp worker of a model in our store (started on first use); None if we lack the model.

        EngineUnavailable while the worker restarts after a crash or once it has failed for good.
        """
        if self.models.store.get(model_id) is None:
            return None
        return await self.compute.engine_for(model_id)

    async def engine_when_ready(self, model_id: bytes) -> EngineWorker | None:
        """engine_for, waiting out a worker restart (up to ENGINE_PATIENCE); None if there will be none."""
        give_up_at = time.monotonic() + ENGINE_PATIENCE
        while True:
            try:
                return await self.engine_for(model_id)
            except EngineUnavailable as exc:
                if not self.compute.usable(model_id) or time.monotonic() > give_up_at:
                    log.warning("model %s: no engine: %s", model_id.hex()[:16], exc)
                    return None
            await asyncio.sleep(1.0)

    async def wait_for_output(self, txid: bytes, script: bytes, min_value: int) -> tuple[int, int] | None:
        """(index, value) of the output of `txid` paying `script` at least `min_value`, seen in the mempool or chain."""
        deadline = time.monotonic() + SEEN_WAIT
        arrival = self._arrivals.setdefault(txid, asyncio.Event())
        try:
            while time.monotonic() < deadline:
                arrival.clear()
                found = await self.chain.call(self._find_output, txid, script)
                if found is not None:
                    return found if found[1] >= min_value else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrival.wait(), POLL)  # POLL still catches one that comes in a block
        finally:
            self._arrivals.pop(txid, None)
        return None

    async def holds(self, outpoint: OutPoint, locked: TxOut) -> bool:
        """True while the mempool or the UTXO set shows `locked` at `outpoint`'s transaction."""
        return await self.chain.call(self._find_output, outpoint.txid, locked.script_pubkey) is not None

    async def output_at(self, outpoint: OutPoint) -> TxOut | None:
        """The output at `outpoint` while the mempool or the UTXO set holds it."""
        return await self.chain.call(self._output_at, outpoint)

    def _output_at(self, outpoint: OutPoint) -> TxOut | None:
        entry = self.chain.mempool.get(outpoint.txid)
        if entry is not None:
            return entry.tx.outputs[outpoint.index] if outpoint.index < len(entry.tx.outputs) else None
        coin = self.chain.chainstate.get_coin(outpoint)
        return None if coin is None else coin.tx_out

    async def locate(self, txid: bytes, script: bytes) -> Located | None:
        """The output of `txid` paying `script` in the mempool or the UTXO set (None: neither holds it)."""
        return await self.chain.call(self._locate, txid, script)

    def confirmations(self, txid: bytes) -> int:
        """Chain thread: blocks that hold `txid`'s output 0 (0: not in the chain, or that output is spent)."""
        coin = self.chain.chainstate.get_coin(OutPoint(txid, 0))
        return 0 if coin is None else self.chain.chainstate.tip.height - coin.height + 1

    def _locate(self, txid: bytes, script: bytes) -> Located | None:
        found = self._find_output(txid, script)
        if found is None:
            return None
        index, value = found
        coin = None if txid in self.chain.mempool else self.chain.chainstate.get_coin(OutPoint(txid, index))
        depth = 0 if coin is None else self.chain.chainstate.tip.height - coin.height + 1
        return Located(index, value, depth, self.chain.mempool.spender(OutPoint(txid, index)))

    def _find_output(self, txid: bytes, script: bytes) -> tuple[int, int] | None:
        """Chain thread: the output of `txid` paying `script`, from the mempool or the UTXO set."""
        entry = self.chain.mempool.get(txid)
        if entry is not None:
            outputs = list(enumerate(entry.tx.outputs))
        else:
            coins = ((i, self.chain.chainstate.get_coin(OutPoint(txid, i))) for i in range(MAX_OUTPUTS_SEARCHED))
            outputs = [(i, coin.tx_out) for i, coin in coins if coin is not None]
        return next(((i, out.value) for i, out in outputs if out.script_pubkey == script), None)

    async def publish(
        self, tx: Transaction, give_up_at: float, retry: frozenset[str] = frozenset({"job-dispute-window"})
    ) -> bool:
        """Put a job transaction in the mempool (and so on the network) once the dispute window lets it in.

        True once it is in; False if the mempool refused it for a reason not in `retry`, or time ran out.
        """
        while time.time() < give_up_at:
            try:
                await self.chain.submit_transaction(tx)
                log.info("job transaction %s is in the mempool", tx.txid())
                return True
            except TxRejected as exc:
                if exc.reason not in retry:
                    log.info("job transaction %s not published: %s", tx.txid(), exc)
                    return False
            await asyncio.sleep(1.0)
        return False

    async def take_when_allowed(self, spend: TimedSpend, retry: frozenset[str] = TIMED_RETRY) -> Transaction | None:
        """Move `spend`'s output to a fresh wallet address once the chain lets its time-locked branch through.

        The mempool refuses the spend until the median time past passes its lock time and the job's
        dispute window; we also wait for the wall clock, since block times can run ahead of it (fast
        regtest mining does) and the other party is owed its whole window in real time. A wallet that
        cannot sign yet (locked, and the key not held) is asked again every second. The spend, or
        None: the output was taken by another spend (one we saw once and no longer find), the mempool
        refused it for a reason not in `retry`, or RELEASE_PATIENCE past the lock time ran out.
        """
        wallets = self.require_wallets()
        pay_to = p2pkh_script(hash160(wallets.get().new_job_key()))
        outpoint, locked = spend.spent.outpoint, spend.spent.out
        seen = await self.holds(outpoint, locked)
        where = f"{hex_id(outpoint.txid)}:{outpoint.index}"
        while time.time() < spend.lock_time + RELEASE_PATIENCE:
            await asyncio.sleep(1.0)
            present = await self.holds(outpoint, locked)
            if seen and not present:
                log.warning("job %s: %s was taken by another spend; not taking it", hex_id(spend.job_id), where)
                return None
            seen = seen or present
            if time.time() < spend.lock_time:
                continue
            try:
                tx = spend.build(pay_to, wallets.get())
            except WalletError as exc:
                log.warning("job %s: cannot sign the spend of %s yet: %s", hex_id(spend.job_id), where, exc.message)
                continue
            try:
                await self.chain.submit_transaction(tx)
            except TxRejected as exc:
                if exc.reason in retry:
                    continue
                log.info("job %s: spending %s stopped: %s", hex_id(spend.job_id), where, exc)
                return None
            log.info("job %s: took %d from %s into the wallet", hex_id(spend.job_id), locked.value, where)
            return tx
        log.warning("job %s: gave up taking %s", hex_id(spend.job_id), where)
        return None

    def spawn(self, coroutine: Coroutine[Any, Any, object], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        """Cancel the background tasks (the compute service stops the workers)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


_Inner = TypeVar("_Inner", bound=Message)


def decode_directed(message_type: type[_Inner], directed: Directed) -> _Inner | None:
    """Decode a directed payload; None (logged) if malformed. The relay that brought it cannot check it, so no blame."""
    try:
        return message_type.from_payload(directed.payload)
    except ProtocolViolation as exc:
        log.warning("directed %s from %s: %s", directed.inner_command, directed.sender.hex(), exc.reason)
        return None


def hex_id(hash_bytes: bytes) -> str:
    """A Job ID or txid as RPC shows it (reversed, like txids)."""
    return hash_bytes[::-1].hex()


def testament_record(message: JobTestament) -> TestamentRecord:
    return TestamentRecord(
        message.node,
        message.node_pubkey,
        message.commitment,
        message.signature,
        message.stake_txid,
        message.node_signature,
    )


def testament_message(job_id: bytes, t: TestamentRecord) -> JobTestament:
    return JobTestament(job_id, t.node, t.node_pubkey, t.commitment, t.signature, t.stake_txid, t.node_signature)


def delivery_record(message: JobDelivery) -> DeliveryRecord:
    """The pool fills in the Pn from the testament the delivery names (JobPool.add_delivery)."""
    return DeliveryRecord(
        message.node, b"", message.sealed, message.signature, message.stake_txid, message.node_signature
    )


def delivery_message(job_id: bytes, d: DeliveryRecord) -> JobDelivery:
    return JobDelivery(job_id, d.node, d.sealed, d.signature, d.stake_txid, d.node_signature)
