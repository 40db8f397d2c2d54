"""The compute side of a job (whitepaper 2.4, docs/jobs-design.md): what a serving node does for other nodes' jobs.

With --serve-model and a wallet, an idle node takes a job for a served model whose escrow it can see,
broadcasts jobaccept, generates on the engine's own thread, signs the commitment with a fresh wallet key
Pn, funds the STAKE (STAKE_MULTIPLE x the reward) and broadcasts the testament. On a payment that moves
that escrow to the right PAYOUT with a valid signature it delivers the encrypted output and publishes the
payment, retrying while the dispute window keeps it out of the mempool, then takes the STAKE and the PAYOUT
into the wallet once their time locks open. With `cheat` (regtest --cheat-jobs) it commits to and
delivers a tampered output instead. It knows the client side only through the pool and the messages.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from camelid.chain.errors import TxRejected
from camelid.chain.jobpool import JobRecord, JobState, TestamentRecord, job_accept_digest
from camelid.compute.tamper import tamper_output
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
from camelid.core.script import ScriptError, p2pkh_script
from camelid.core.sigchecker import TransactionSignatureChecker
from camelid.core.transaction import SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut
from camelid.crypto import ecies
from camelid.crypto.hashes import hash160
from camelid.crypto.keys import PublicKey
from camelid.node.jobs.common import RELEASE_PATIENCE, STAKE_MULTIPLE, JobContext, decode_directed, hex_id
from camelid.p2p.messages import JobAccept, JobDelivery, JobPayment, JobTestament

if TYPE_CHECKING:
    from camelid.p2p.messages import Directed
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)

RELEASE_FEE = 10_000
"""Fee of the node's one-input spend taking its PAYOUT or STAKE back (~30 per byte)."""
NON_FINAL = 0xFFFFFFFE
"""Input sequence that lets the lock time (and so CHECKLOCKTIMEVERIFY) apply."""
RETRY_REASONS = frozenset({"non-final", "job-dispute-window", "bad-txns-inputs-missingorspent"})
"""Mempool refusals that only time (or the payment reaching the chain) cures."""


@dataclass
class ComputeJob:
    """A job this node computed: the output it holds back until paid."""

    output_tokens: list[int]
    node_pubkey: bytes
    commitment: bytes
    escrow: OutPoint
    escrow_script: bytes
    reward: int
    payment_txid: str | None = None  # the payment we delivered for


class JobComputer:
    """This node's compute work (`jobs`, by Job ID): one job at a time, from accept to release."""

    def __init__(self, ctx: JobContext, serving: bool, cheat: bool) -> None:
        """`serving`: take jobs for the models the store holds; `cheat` (regtest only): tamper with outputs."""
        self._ctx = ctx
        self._serving = serving
        self._cheat = cheat
        self._busy = False
        self.jobs: dict[bytes, ComputeJob] = {}

    async def preload(self) -> None:
        """Load the first served model now: the chain judges fraud proofs with it from the start."""
        held = self._ctx.models.announced()
        if self._serving and held:
            try:
                await self._ctx.engine_for(held[0])
            except ValueError as exc:
                log.warning("model %s cannot run here (%s); serving its file but no jobs for it", held[0].hex(), exc)

    def offer(self, record: JobRecord) -> None:
        """A new valid job reached the pool: take it if we serve its model and are idle."""
        if self._wants(record):
            self._busy = True
            self._ctx.spawn(self._compute(record), f"job-compute-{hex_id(record.job_id)[:16]}")

    def _wants(self, record: JobRecord) -> bool:
        return (
            self._serving
            and not self._busy
            and record.client_node != self._ctx.node_id
            and self._ctx.models.store.get(record.params.model_id) is not None
        )

    async def _compute(self, record: JobRecord) -> None:
        try:
            await self._compute_and_stake(record)
        finally:
            self._busy = False

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
        assert engine is not None  # _wants checked that the store holds the model
        accept = JobAccept(job_id, ctx.node_id, ctx.node_key.sign(job_accept_digest(job_id, ctx.node_id)))
        ctx.pool.add_accept(accept.job_id, accept.node, accept.signature)
        ctx.manager.broadcast(accept)
        prompt_tokens = await engine.run(engine.tokenize, params.prompt)
        output = await engine.agenerate(prompt_tokens, params.max_tokens, params.seed, params.temperature)
        if self._cheat:
            output = await engine.run(tamper_output, engine, prompt_tokens, output)
            log.warning("job %s: --cheat-jobs: delivering a tampered output", hex_id(job_id))
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
            ctx.pool.refund_time(params),
        )
        created = wallet.create_script_payment(stake, reward * STAKE_MULTIPLE, job_id)
        await wallets.send(wallet, created)
        stake_index = next(i for i, out in enumerate(created.tx.outputs) if out.script_pubkey == stake)
        self.jobs[job_id] = ComputeJob(
            output,
            node_pubkey,
            commitment,
            OutPoint(record.escrow_txid, escrow_index),
            escrow,
            reward,
        )
        ctx.spawn(
            self._release(
                job_id,
                work_key=node_pubkey,
                locked=created.tx.outputs[stake_index],
                outpoint=OutPoint(created.tx.hash, stake_index),
                release_time=ctx.pool.refund_time(params),
            ),
            f"job-reclaim-{hex_id(job_id)[:16]}",
        )
        testament = JobTestament(job_id, ctx.node_id, node_pubkey, commitment, signature, created.tx.hash)
        ctx.pool.add_testament(
            job_id, TestamentRecord(ctx.node_id, node_pubkey, commitment, signature, created.tx.hash)
        )
        ctx.manager.broadcast(testament)
        log.info("job %s: generated %d tokens, staked in %s", hex_id(job_id), len(output), created.tx.txid())

    async def on_payment(self, peer: Peer, directed: Directed) -> None:
        message = decode_directed(JobPayment, directed)
        if message is None:
            return
        ctx = self._ctx
        work = self.jobs.get(message.job_id)
        record = ctx.pool.get(message.job_id)
        if work is None or record is None or work.payment_txid is not None:
            return
        try:
            tx = Transaction.from_bytes(message.tx)
        except ValueError as exc:
            log.warning(
                "job %s: payment from %s is no transaction: %s", hex_id(message.job_id), directed.sender.hex(), exc
            )
            return
        problem = payment_problem(tx, message.job_id, work, record.params, ctx.pool.refund_time(record.params))
        if problem is not None:
            log.warning("job %s: refusing payment %s: %s", hex_id(message.job_id), tx.txid(), problem)
            return
        work.payment_txid = tx.txid()
        ctx.pool.advance(record, JobState.PAID)
        plain = struct.pack(f"<{len(work.output_tokens)}I", *work.output_tokens)
        sealed = ecies.encrypt(PublicKey.from_bytes(record.params.client_pubkey), plain, aad=message.job_id)
        ctx.manager.send_directed(
            record.client_node, JobDelivery.command, JobDelivery(message.job_id, sealed).to_payload()
        )
        ctx.pool.advance(record, JobState.DELIVERED)
        log.info("job %s: paid by %s, output delivered", hex_id(message.job_id), tx.txid())
        ctx.spawn(ctx.publish(tx, ctx.pool.refund_time(record.params)), f"job-publish-{tx.txid()[:16]}")
        lock = match_job_lock(tx.outputs[0].script_pubkey)
        assert lock is not None  # payment_problem checked output 0
        ctx.spawn(
            self._release(message.job_id, work.node_pubkey, tx.outputs[0], OutPoint(tx.hash, 0), lock.release_time),
            f"job-claim-{hex_id(message.job_id)[:16]}",
        )

    async def _release(
        self, job_id: bytes, work_key: bytes, locked: TxOut, outpoint: OutPoint, release_time: int
    ) -> None:
        """Take a STAKE or PAYOUT of ours into the wallet through the time-locked branch once the chain allows it.

        The mempool refuses the spend until the median time past passes release_time (lock time) and the
        job's dispute window; we also wait for the wall clock to pass release_time, then retry until the
        chain allows it. Nobody else can spend it before release_time but the
        client with a fraud proof, after which the input is gone and we stop: an output we saw once and
        no longer find in the mempool or the UTXO set was spent.
        """
        ctx = self._ctx
        wallets = ctx.require_wallets()
        pay_to = p2pkh_script(hash160(wallets.get().new_job_key()))
        seen = await ctx.holds(outpoint, locked)
        while time.time() < release_time + RELEASE_PATIENCE:
            await asyncio.sleep(1.0)
            present = await ctx.holds(outpoint, locked)
            if seen and not present:
                log.warning(
                    "job %s: %s:%d was taken by another spend (a fraud proof?); not releasing it",
                    hex_id(job_id),
                    hex_id(outpoint.txid),
                    outpoint.index,
                )
                return
            seen = seen or present
            if time.time() < release_time:
                # Block times can run ahead of the clock (fast regtest mining does); waiting for the wall
                # clock too gives the client its whole dispute window in real time before we take the coins.
                continue
            wallet = wallets.get()
            if wallet.is_locked:
                continue
            outputs = (TxOut(locked.value - RELEASE_FEE, pay_to),)
            unsigned = Transaction(
                inputs=(TxIn(outpoint.txid, outpoint.index, sequence=NON_FINAL),),
                outputs=outputs,
                lock_time=release_time,
                job_id=job_id,
            )
            key = wallet.job_private_key(work_key)
            signature = key.sign(unsigned.signature_hash(0, locked.script_pubkey, locked.value, SIGHASH_ALL))
            spend = Transaction(
                inputs=(
                    TxIn(
                        outpoint.txid, outpoint.index, release_script_sig(signature + bytes([SIGHASH_ALL])), NON_FINAL
                    ),
                ),
                outputs=outputs,
                lock_time=release_time,
                job_id=job_id,
            )
            try:
                await ctx.chain.submit_transaction(spend)
            except TxRejected as exc:
                if exc.reason in RETRY_REASONS:
                    continue
                log.info("job %s: releasing %s stopped: %s", hex_id(job_id), hex_id(outpoint.txid), exc)
                return
            log.info("job %s: released %d from %s into the wallet", hex_id(job_id), locked.value, hex_id(outpoint.txid))
            return
        log.warning("job %s: gave up releasing %s:%d", hex_id(job_id), hex_id(outpoint.txid), outpoint.index)


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
