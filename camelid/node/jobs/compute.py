"""The compute side of a job (whitepaper 2.4, docs/jobs-design.md): what a serving node does for other nodes' jobs.

With --serve-model and a wallet, an idle node takes a job for a served model whose escrow it can see,
broadcasts jobaccept, generates on the engine's own thread, signs the commitment with a fresh wallet key
Pn, funds the STAKE (STAKE_MULTIPLE x the reward) and broadcasts the testament. On a payment that moves
that escrow to the right PAYOUT with a valid signature it delivers the encrypted output and publishes the
payment, retrying while the dispute window keeps it out of the mempool, then takes the STAKE and the PAYOUT
into the wallet once their time locks open. A payment counts whether it comes directed or is published
(mempool or block), and however late: the delivery is a flooded, signed jobdelivery, the counter-proof
every node holds against the client's non-delivery claim on the stake, so delivering is never worse than
not (the mempool gives a node one dispute window after a payment appears to deliver for it). Regtest
--misbehave=tamper-output commits to and delivers a tampered output; never-deliver takes the payment,
publishes it and delivers nothing. It knows the client side only through the pool and the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from camelid.chain.jobpool import JobRecord, JobState, TestamentRecord, job_accept_digest, job_delivery_digest
from camelid.compute.worker_client import EngineUnavailable
from camelid.core.interpreter import verify_script
from camelid.core.job import JobParams
from camelid.core.jobscripts import (
    JOB_PAYOUT_FEE_CAP,
    commitment_signature_digest,
    escrow_script,
    match_job_lock,
    output_commitment,
    release_script_sig,
    stake_script,
)
from camelid.core.script import ScriptError
from camelid.core.sigchecker import TransactionSignatureChecker
from camelid.core.transaction import OutPoint, Transaction, TxOut
from camelid.crypto import ecies
from camelid.crypto.keys import PublicKey
from camelid.node.config import Misbehaviour
from camelid.node.jobs.common import (
    SEEN_WAIT,
    STAKE_MULTIPLE,
    JobContext,
    TimedSpend,
    decode_directed,
    hex_id,
)
from camelid.node.jobs.scheduler import ESCROW_RECHECK, JobScheduler
from camelid.p2p.messages import JobAccept, JobDelivery, JobPayment, JobTestament

if TYPE_CHECKING:
    from camelid.p2p.messages import Directed
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)


@dataclass
class ComputeJob:
    """A job this node computed: the output it holds back until paid."""

    output_tokens: list[int]
    node_pubkey: bytes
    commitment: bytes
    escrow: OutPoint
    escrow_script: bytes
    reward: int
    stake: OutPoint
    stake_out: TxOut
    payment_txid: str | None = None  # the payment we delivered for
    payment: Transaction | None = None
    released: list[OutPoint] = field(default_factory=list)  # our STAKE and PAYOUT, once back in the wallet


class JobComputer:
    """This node's compute work (`jobs`, by Job ID): one job at a time, from accept to release."""

    def __init__(self, ctx: JobContext, serving: bool, misbehave: Misbehaviour | None) -> None:
        """`serving`: take jobs for the models the store holds; `misbehave` (regtest only): cheat on purpose."""
        self._ctx = ctx
        self._serving = serving
        self._misbehave = misbehave
        self._scheduler = JobScheduler(
            ctx.node_id,
            lambda model_id: ctx.models.store.get(model_id) is not None and ctx.compute.usable(model_id),
        )
        self._offered = asyncio.Event()  # set by offer: a job came in that the idle _work loop should look at
        self.jobs: dict[bytes, ComputeJob] = {}

    def start(self) -> None:
        """Take jobs from now on, if this node sells compute (its models' workers passed their self-check)."""
        if self._serving:
            self._ctx.spawn(self._work(), "job-work")

    def offer(self, record: JobRecord) -> None:
        """A new valid job reached the pool: wake the _work loop if it is idle (a busy one looks when free)."""
        self._offered.set()

    async def _work(self) -> None:
        """For the node's life: take open jobs one at a time; when none is open, sleep until a job is
        offered or another node's claim on one runs out. A busy node so accepts nothing new, and takes
        the jobs offered while it was busy once it is free."""
        while True:
            self._offered.clear()  # before looking: a job or escrow arriving during the look wakes the wait below
            record, unfunded = await self._next_claim()
            if record is not None:
                await self._compute(record)
                continue
            jobs = self._ctx.pool.jobs()
            self._scheduler.forget(job.job_id for job in jobs)
            now = time.time()
            # A late escrow is looked for again soon; a few ms late for a claim running out is no harm.
            wake_at = now + ESCROW_RECHECK if unfunded else self._scheduler.next_reopening(jobs, now)
            timeout = None if wake_at is None else wake_at - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._offered.wait(), timeout)

    async def _next_claim(self) -> tuple[JobRecord | None, bool]:
        """(the open job this node claims now, after its claim delay, or None; whether jobs wait for their escrow).

        Only a job whose escrow is already here is claimed, so that the jobaccept follows the claim at once
        and other nodes see the claim as early as they can. A job whose escrow has not shown SEEN_WAIT
        after the job did is given up.
        """
        unfunded: set[bytes] = set()
        while (choice := self._scheduler.choose(self._ctx.pool.jobs(), time.time(), unfunded)) is not None:
            if not await self._escrow_seen(choice):
                arrived = choice.history[0][1]  # when the job reached our pool (its CREATED entry)
                if time.time() < arrived + SEEN_WAIT:
                    unfunded.add(choice.job_id)
                else:
                    self._scheduler.tried.add(choice.job_id)
                continue
            await asyncio.sleep(self._scheduler.claim_delay(choice.job_id, self._ctx.pool.jobs()))
            if self._scheduler.is_open(choice, time.time()):  # nobody's jobaccept came in while we waited
                return choice, bool(unfunded)
        return None, bool(unfunded)

    async def _yields(self, record: JobRecord) -> bool:
        """Whether a better-ranked node claimed the job at the same moment as we did, so that it, not we,
        stakes and publishes a testament: we give its jobaccept until CONTEST_WINDOW after our claim to arrive."""
        await asyncio.sleep(self._scheduler.contest_ends(record.job_id) - time.time())
        rival = self._scheduler.rival_first(record)
        if rival is not None:
            log.info("job %s: %s claimed it at the same moment and ranks first", hex_id(record.job_id), rival.hex())
        return rival is not None

    async def _escrow_seen(self, record: JobRecord) -> bool:
        params, pool = record.params, self._ctx.pool
        escrow = escrow_script(record.job_id, params.client_pubkey, params.timestamp, pool.refund_time(params))
        # holds() looks for the script among the transaction's outputs: the index and value are not compared.
        return await self._ctx.holds(OutPoint(record.escrow_txid, 0), TxOut(0, escrow))

    async def _compute(self, record: JobRecord) -> None:
        """Compute one claimed job; a failure is logged and ends only that job, never the node's job-taking."""
        self._scheduler.claim(record, time.time())
        try:
            await self._compute_and_stake(record)
        except EngineUnavailable as exc:  # nothing staked yet: the job is given up, another node or a refund ends it
            log.warning("job %s: given up, the llama.cpp worker is unavailable: %s", hex_id(record.job_id), exc)
        except Exception:
            log.exception("job %s: computing it failed", hex_id(record.job_id))

    async def _compute_and_stake(self, record: JobRecord) -> None:
        ctx = self._ctx
        params, job_id = record.params, record.job_id
        escrow = escrow_script(job_id, params.client_pubkey, params.timestamp, ctx.pool.refund_time(params))
        found = await ctx.wait_for_output(record.escrow_txid, escrow, 1)
        if found is None:
            log.info("job %s: escrow %s not seen; not taking it", hex_id(job_id), hex_id(record.escrow_txid))
            return
        escrow_index, reward = found
        engine = await ctx.engine_for(params.model_id)
        assert engine is not None  # the scheduler claims only jobs for models the store holds
        accept = JobAccept(job_id, ctx.node_id, ctx.node_key.sign(job_accept_digest(job_id, ctx.node_id)))
        ctx.pool.add_accept(accept.job_id, accept.node, accept.signature)
        ctx.manager.broadcast(accept)
        prompt_tokens = await engine.tokenize(params.prompt)
        output = await engine.generate(prompt_tokens, params.max_tokens, params.seed, params.temperature)
        if self._misbehave is Misbehaviour.TAMPER_OUTPUT:
            output = await engine.tamper(prompt_tokens, output)
            log.warning("job %s: --misbehave=tamper-output: delivering a tampered output", hex_id(job_id))
        if await self._yields(record):
            return
        commitment = output_commitment(
            params.model_id, prompt_tokens, output, params.max_tokens, params.seed, params.temperature
        )
        wallets = ctx.require_wallets()
        wallet = wallets.get()
        node_pubkey = wallet.new_job_key()
        signature = wallet.job_private_key(node_pubkey).sign(commitment_signature_digest(commitment))
        stake = stake_script(
            job_id,
            node_pubkey,
            params.client_pubkey,
            commitment,
            params.model_id,
            params.timestamp,
            params.timestamp + params.timelock,
            ctx.pool.refund_time(params),
        )
        created = await wallets.pay(
            wallet, lambda: wallet.create_script_payment(stake, reward * STAKE_MULTIPLE, job_id)
        )
        stake_index = next(i for i, out in enumerate(created.tx.outputs) if out.script_pubkey == stake)
        work = self.jobs[job_id] = ComputeJob(
            output,
            node_pubkey,
            commitment,
            OutPoint(record.escrow_txid, escrow_index),
            escrow,
            reward,
            OutPoint(created.tx.hash, stake_index),
            created.tx.outputs[stake_index],
        )
        self._release(job_id, work, work.stake, work.stake_out)
        testament = JobTestament(job_id, ctx.node_id, node_pubkey, commitment, signature, created.tx.hash)
        ctx.pool.add_testament(
            job_id, TestamentRecord(ctx.node_id, node_pubkey, commitment, signature, created.tx.hash)
        )
        ctx.manager.broadcast(testament)
        log.info("job %s: generated %d tokens, staked in %s", hex_id(job_id), len(output), created.tx.txid())

    async def on_payment(self, peer: Peer, directed: Directed) -> None:
        """A directed payment from the client: the node learns of it before anyone can mine it."""
        message = decode_directed(JobPayment, directed)
        if message is None or message.job_id not in self.jobs:
            return
        try:
            tx = Transaction.from_bytes(message.tx)
        except ValueError as exc:
            log.warning(
                "job %s: payment from %s is no transaction: %s", hex_id(message.job_id), directed.sender.hex(), exc
            )
            return
        self._take_payment(message.job_id, tx, published=False)

    def on_published(self, tx: Transaction) -> None:
        """A transaction reached the mempool or a block: a job's escrow, or a payment for a job of ours."""
        record = self._ctx.pool.get(tx.job_id)
        if record is not None and record.escrow_txid == tx.hash:
            self._offered.set()  # a job waiting for this escrow can be claimed now, not at the next ESCROW_RECHECK
        work = self.jobs.get(tx.job_id)
        spends_escrow = work is not None and any(OutPoint(i.prev_txid, i.prev_index) == work.escrow for i in tx.inputs)
        if spends_escrow and tx.outputs and match_job_lock(tx.outputs[0].script_pubkey) is not None:  # not a refund
            self._take_payment(tx.job_id, tx, published=True)

    def _take_payment(self, job_id: bytes, tx: Transaction, published: bool) -> None:
        """Deliver for a valid payment (once per job), publish it if it is not yet, and claim the PAYOUT later."""
        ctx = self._ctx
        work = self.jobs[job_id]
        record = ctx.pool.get(job_id)
        if record is None or work.payment_txid is not None:
            return
        params = record.params
        problem = payment_problem(tx, job_id, work, params, ctx.pool.refund_time(params))
        if problem is not None:
            log.warning("job %s: refusing payment %s: %s", hex_id(job_id), tx.txid(), problem)
            return
        work.payment_txid, work.payment = tx.txid(), tx
        ctx.pool.advance(record, JobState.PAID)
        if self._misbehave is Misbehaviour.NEVER_DELIVER:
            log.warning("job %s: --misbehave=never-deliver: paid by %s, delivering nothing", hex_id(job_id), tx.txid())
        else:
            self._deliver(record, work)
            log.info("job %s: paid by %s, output delivered", hex_id(job_id), tx.txid())
        if not published:
            ctx.spawn(ctx.publish(tx, ctx.pool.refund_time(params)), f"job-publish-{tx.txid()[:16]}")
        self._release(job_id, work, OutPoint(tx.hash, 0), tx.outputs[0])

    def resume(self, job_id: bytes) -> None:
        """After a restart: deliver for a payment taken but not yet delivered, and watch our time locks again."""
        work, record = self.jobs[job_id], self._ctx.pool.get(job_id)
        if record is None:
            return
        undelivered = work.payment is not None and work.node_pubkey not in record.deliveries
        if undelivered and self._misbehave is not Misbehaviour.NEVER_DELIVER:
            self._deliver(record, work)
        if work.stake not in work.released:
            self._release(job_id, work, work.stake, work.stake_out)
        if work.payment is not None and OutPoint(work.payment.hash, 0) not in work.released:
            self._release(job_id, work, OutPoint(work.payment.hash, 0), work.payment.outputs[0])

    def _deliver(self, record: JobRecord, work: ComputeJob) -> None:
        """Flood our output, encrypted to the client and signed with our job key: the proof that we delivered."""
        ctx = self._ctx
        plain = struct.pack(f"<{len(work.output_tokens)}I", *work.output_tokens)
        sealed = ecies.encrypt(PublicKey.from_bytes(record.params.client_pubkey), plain, aad=record.job_id)
        key = ctx.require_wallets().get().job_private_key(work.node_pubkey)
        signature = key.sign(job_delivery_digest(record.job_id, sealed))
        ctx.pool.add_delivery(record.job_id, ctx.node_id, sealed, signature)
        ctx.manager.broadcast(JobDelivery(record.job_id, ctx.node_id, sealed, signature))

    def _release(self, job_id: bytes, work: ComputeJob, outpoint: OutPoint, locked: TxOut) -> None:
        """Take our STAKE or PAYOUT into the wallet through its time-locked branch once the chain allows it.

        Before release_time nobody else can spend it but the client (a fraud proof, or on a STAKE the
        non-delivery claim the mempool allows only for a paid job we did not deliver); then we stop.
        """
        lock = match_job_lock(locked.script_pubkey)
        assert lock is not None  # our own STAKE, or a PAYOUT payment_problem checked
        spend = TimedSpend(
            job_id, outpoint, locked, lock.release_time, work.node_pubkey, lambda sig: release_script_sig(sig, lock)
        )

        async def release() -> None:
            if await self._ctx.take_when_allowed(spend) is not None:
                work.released.append(outpoint)
                self._ctx.pool.on_change(job_id)  # the journal keeps it: a restart does not try again

        self._ctx.spawn(release(), f"job-release-{hex_id(outpoint.txid)[:16]}")


def payment_problem(
    tx: Transaction, job_id: bytes, work: ComputeJob, params: JobParams, refund_time: int
) -> str | None:
    """Why `tx` is not a payment we can rely on (None if it is): it must move our escrow to our PAYOUT.

    The PAYOUT must release to us no later than our stake does (refund_time): a client could
    otherwise pay with a lock that keeps the reward from us for years.
    """
    if tx.job_id != job_id:
        return "it carries another Job ID"
    spends = [i for i, txin in enumerate(tx.inputs) if OutPoint(txin.prev_txid, txin.prev_index) == work.escrow]
    if not spends:
        return "it does not spend the job's escrow"
    lock = match_job_lock(tx.outputs[0].script_pubkey) if tx.outputs else None
    expected = (job_id, params.timestamp, work.node_pubkey, params.client_pubkey, work.commitment, params.model_id)
    if (
        lock is None
        or lock.is_stake
        or (lock.job_id, lock.t0, lock.node_pubkey, lock.client_pubkey, lock.commitment, lock.model_id) != expected
    ):
        return "its output 0 is not a PAYOUT to our key for our commitment"
    if lock.release_time > refund_time:
        return f"its PAYOUT releases at {lock.release_time}, after the job's refund time {refund_time}"
    if tx.outputs[0].value < work.reward - JOB_PAYOUT_FEE_CAP:
        return f"it pays {tx.outputs[0].value}, less than the escrow's {work.reward} minus the fee cap"
    index = spends[0]
    try:
        verify_script(
            tx.inputs[index].script_sig, work.escrow_script, TransactionSignatureChecker(tx, index, work.reward)
        )
    except ScriptError as exc:
        return f"its escrow signature does not verify ({exc})"
    return None
