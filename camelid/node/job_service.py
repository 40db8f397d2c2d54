"""Jobs over the network (whitepaper 2.4, docs/jobs-design.md): the pool every node keeps, the client, the compute node.

Every node tracks the flooded job messages in its JobPool and relays the new, valid ones.

Client (submitjob): build JobParams with a fresh wallet key Pc, fund the ESCROW output, sign and
broadcast the job. On the first acceptable testament (signature valid, stake transaction seen),
move the escrow to that node's PAYOUT and send the payment directed to it. On delivery, decrypt
(ECIES, aad = Job ID) and, if this node holds the model, check the commitment and run RASTiC. A
failure beyond what float noise explains (gap > EPS_SLASH, or structural) is disputed: the client
publishes the payment itself and takes the STAKE and the PAYOUT back in one fraud-proof spend.

Compute node (--serve-model and a wallet): when idle, take a job for a served model whose escrow
it can see, broadcast jobaccept, generate on the engine's own thread, sign the commitment with a
fresh wallet key Pn, fund the STAKE (STAKE_MULTIPLE x the reward), broadcast the testament. On a
payment that moves that escrow to the right PAYOUT with a valid signature, deliver the encrypted
output and publish the payment, retrying while the dispute window keeps it out of the mempool.
With `cheat` (regtest --cheat-jobs) it commits to and delivers a tampered output instead.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from camelid.chain.errors import TxRejected
from camelid.chain.jobpool import (
    JobPool,
    JobRecord,
    JobRejected,
    JobState,
    TestamentRecord,
    job_accept_digest,
    job_offer_digest,
)
from camelid.compute.engine import Engine
from camelid.compute.fraudproof import EngineProofVerifier
from camelid.compute.rastic import EPS_SLASH, averify
from camelid.compute.tamper import tamper_output
from camelid.core.interpreter import verify_script
from camelid.core.job import JobParams
from camelid.core.jobscripts import (
    JOB_PAYOUT_FEE_CAP,
    FraudProof,
    commitment_signature_digest,
    escrow_script,
    escrow_script_sig,
    fraud_proof_script_sig,
    match_job_lock,
    output_commitment,
    payout_script,
    release_script_sig,
    stake_script,
)
from camelid.core.script import ScriptError, p2pkh_script
from camelid.core.sigchecker import TransactionSignatureChecker
from camelid.core.transaction import SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut
from camelid.crypto import ecies
from camelid.crypto.hashes import hash160
from camelid.crypto.keys import PrivateKey, PublicKey
from camelid.node.events import BlockConnected
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.messages import JobAccept, JobDelivery, JobMessage, JobPayment, JobTestament

if TYPE_CHECKING:
    from camelid.node.bus import EventBus
    from camelid.node.chain_service import ChainService
    from camelid.node.model_service import ModelService
    from camelid.node.p2p_service import P2PService
    from camelid.node.wallet_service import WalletService
    from camelid.p2p.messages import Directed
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)

STAKE_MULTIPLE = 1
"""Stake = reward x this: a cheating node loses as much as it hoped to earn (jobs-design "Still open" 1)."""
PAYMENT_FEE = 20_000
"""Fee the client leaves when moving the escrow to the PAYOUT (~40 per byte; under JOB_PAYOUT_FEE_CAP)."""
DEFAULT_TIMELOCK = 600
"""Seconds a node has to deliver (JobParams.timelock) unless submitjob says otherwise."""
SEEN_WAIT = 15.0
"""Seconds to wait for an escrow or stake transaction that a job message outran."""
POLL = 0.25
RELEASE_FEE = 10_000
"""Fee of the node's one-input spend taking its PAYOUT or STAKE back (~30 per byte)."""
NON_FINAL = 0xFFFFFFFE
"""Input sequence that lets the lock time (and so CHECKLOCKTIMEVERIFY) apply."""
RELEASE_PATIENCE = 3600
"""Seconds past its release time we keep trying to take back an output (then it was taken by a fraud proof)."""
RETRY_REASONS = frozenset({"non-final", "job-dispute-window", "bad-txns-inputs-missingorspent"})
"""Mempool refusals that only time (or the payment reaching the chain) cures."""
MAX_OUTPUTS_SEARCHED = 4
"""A confirmed escrow or stake is looked for among its transaction's first outputs (ours have two: it and change)."""
PRUNE_INTERVAL = 60.0
SLASH_FEE = 100_000
"""Fee of the client's fraud-proof spend of STAKE + PAYOUT: >= 5 per byte even with two 2,210-token proofs."""


@dataclass
class ClientJob:
    """A job this node submitted: the key it holds, the escrow, and what came back."""

    escrow: OutPoint
    escrow_script: bytes
    reward: int
    client_pubkey: bytes
    testament: TestamentRecord | None = None  # the one we pay (or check the stake of, before paying)
    verdict: str | None = None  # "verified", "failed: ...", or "unverified: ..."
    text: str | None = None
    cancelled: bool = False
    payment: Transaction | None = None  # the escrow spend we sent the node; we publish it ourselves to dispute
    slash_txid: str | None = None  # our fraud-proof spend, once the mempool took it


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


class JobService:
    """Owns the job pool and this node's client and compute roles; `await run()` in the node's TaskGroup."""

    def __init__(
        self,
        chain: ChainService,
        bus: EventBus,
        p2p: P2PService,
        models: ModelService,
        wallets: WalletService | None,
        serve: bool,
        cheat: bool = False,
    ) -> None:
        """`serve`: act as a compute node for the models the store holds (needs `wallets`).

        `cheat` (regtest only): deliver tampered outputs, committed and signed as if honest.
        """
        self._cheat = cheat
        self.chain = chain
        self.pool = JobPool(chain.params.dispute_window)
        self._manager = p2p.manager
        self._node_key = p2p.node_key
        self._node_id = p2p.node_key.public_key.to_bytes()
        self._models = models
        self._wallets = wallets
        self._serving = serve and wallets is not None
        self._client_jobs: dict[bytes, ClientJob] = {}
        self._work: dict[bytes, ComputeJob] = {}
        self._engine: Engine | None = None
        self._busy = False
        self._tasks: set[asyncio.Task[object]] = set()
        for command, handler in (
            (JobMessage.command, self._on_job),
            (JobAccept.command, self._on_accept),
            (JobTestament.command, self._on_testament),
        ):
            self._manager.register_handler(command, handler)
        self._manager.register_directed_handler(JobPayment.command, self._on_payment)
        self._manager.register_directed_handler(JobDelivery.command, self._on_delivery)
        bus.subscribe(BlockConnected, self._on_block_connected)

    async def run(self) -> None:
        held = self._models.announced()
        if self._serving and held:
            try:  # load now: the chain judges fraud proofs with it from the start
                await self._engine_for(held[0])
            except ValueError as exc:
                log.warning("model %s cannot run here (%s); serving its file but no jobs for it", held[0].hex(), exc)
        try:
            while True:
                await asyncio.sleep(PRUNE_INTERVAL)
                self.pool.prune()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._engine is not None:
                await asyncio.to_thread(self._engine.close)

    # -- RPC -------------------------------------------------------------------------------------

    async def submit(
        self,
        prompt: str,
        max_tokens: int,
        model_id: bytes,
        seed: int,
        temperature_milli: int,
        reward: int,
        timelock: int = DEFAULT_TIMELOCK,
    ) -> bytes:
        """submitjob: fund the escrow, publish the job; the Job ID. ValueError/WalletError for bad input."""
        wallets = self._require_wallets()
        wallet = wallets.get()
        client_pubkey = wallet.new_job_key()
        params = JobParams(
            model_id,
            prompt,
            max_tokens,
            seed,
            temperature_milli,
            int(time.time()),
            timelock,
            client_pubkey,
            "",  # client_host/port: informational; deliveries are routed to our node id
            self._manager.listen_port or self.chain.params.default_port,
        )
        job_id = params.job_id()
        script = escrow_script(job_id, client_pubkey, params.timestamp, self.pool.refund_time(params))
        created = wallet.create_script_payment(script, reward, job_id)
        await wallets.send(wallet, created)
        escrow_index = next(i for i, out in enumerate(created.tx.outputs) if out.script_pubkey == script)
        escrow_txid = created.tx.hash
        key = wallet.job_private_key(client_pubkey)
        message = JobMessage(
            params.to_bytes(),
            escrow_txid,
            self._node_id,
            key.sign(job_offer_digest(job_id, escrow_txid, self._node_id)),
        )
        self._client_jobs[job_id] = ClientJob(OutPoint(escrow_txid, escrow_index), script, reward, client_pubkey)
        self.pool.add_job(message.params, message.escrow_txid, message.client_node, message.signature)
        self._manager.broadcast(message)
        log.info("job %s submitted: escrow %s, reward %d", _hex(job_id), created.tx.txid(), reward)
        return job_id

    def job_info(self, job_id: bytes) -> dict[str, Any] | None:
        """getjob: the pool's record, with what only this node knows about its own jobs."""
        record = self.pool.get(job_id)
        if record is None:
            return None
        info = record.to_json()
        info["role"] = self._role(record)
        client = self._client_jobs.get(job_id)
        if client is not None:
            info.update(reward=client.reward, verdict=client.verdict, text=client.text, slash_txid=client.slash_txid)
            if client.testament is not None and record.reached(JobState.PAID):
                info["paid_node"] = client.testament.node.hex()
        elif job_id in self._work:
            info["payment_txid"] = self._work[job_id].payment_txid
        return info

    def list_jobs(self) -> list[dict[str, Any]]:
        return [
            {"jobid": _hex(r.job_id), "state": r.state.value, "model": r.params.model_id.hex(), "role": self._role(r)}
            for r in self.pool.jobs()
        ]

    def cancel(self, job_id: bytes) -> None:
        """canceljob: stop our own job before it is paid (the escrow refund after its refund time comes later)."""
        client = self._client_jobs.get(job_id)
        record = self.pool.get(job_id)
        if client is None or record is None:
            raise ValueError(f"job {_hex(job_id)} is not one this node submitted")
        if record.reached(JobState.PAID):
            raise ValueError(f"job {_hex(job_id)} is already paid")
        client.cancelled = True
        self.pool.advance(record, JobState.CANCELLED)

    def _role(self, record: JobRecord) -> str:
        if record.job_id in self._client_jobs:
            return "client"
        return "compute" if record.job_id in self._work else "observer"

    def _require_wallets(self) -> WalletService:
        if self._wallets is None:
            raise ValueError("jobs need a wallet (the node runs with -disablewallet)")
        return self._wallets

    # -- flooded messages --------------------------------------------------------------------------

    async def _on_job(self, peer: Peer, message: JobMessage) -> None:
        record = self._checked(
            lambda: self.pool.add_job(message.params, message.escrow_txid, message.client_node, message.signature)
        )
        if record is None:
            return
        self._manager.broadcast(message, exclude={peer.id})
        if self._wants(record):
            self._busy = True
            self._spawn(self._compute(record), f"job-compute-{_hex(record.job_id)[:16]}")

    async def _on_accept(self, peer: Peer, message: JobAccept) -> None:
        if self._checked(lambda: self.pool.add_accept(message.job_id, message.node, message.signature)):
            self._manager.broadcast(message, exclude={peer.id})

    async def _on_testament(self, peer: Peer, message: JobTestament) -> None:
        testament = TestamentRecord(
            message.node, message.node_pubkey, message.commitment, message.signature, message.stake_txid
        )
        if not self._checked(lambda: self.pool.add_testament(message.job_id, testament)):
            return
        self._manager.broadcast(message, exclude={peer.id})
        client = self._client_jobs.get(message.job_id)
        if client is not None and client.testament is None and not client.cancelled:
            client.testament = testament  # the first acceptable one wins; _pay clears it if the stake never shows
            self._spawn(self._pay(message.job_id, client, testament), f"job-pay-{_hex(message.job_id)[:16]}")

    @staticmethod
    def _checked(add: Callable[[], Any]) -> Any:
        try:
            return add()
        except JobRejected as exc:
            raise ProtocolViolation(f"bad-job: {exc}") from None

    async def _on_block_connected(self, event: BlockConnected) -> None:
        for record in self.pool.settle_block(list(event.block.transactions)):
            log.info("job %s settled in block %d", _hex(record.job_id), event.height)

    # -- client ----------------------------------------------------------------------------------

    async def _pay(self, job_id: bytes, client: ClientJob, testament: TestamentRecord) -> None:
        record = self.pool.get(job_id)
        assert record is not None  # the testament was just added to it
        params = record.params
        stake = self._stake_script(record, testament)
        if await self._wait_for_output(testament.stake_txid, stake, client.reward * STAKE_MULTIPLE) is None:
            log.info(
                "job %s: stake %s never showed; waiting for another testament", _hex(job_id), _hex(testament.stake_txid)
            )
            client.testament = None
            return
        if client.cancelled:
            return
        pay_time = int(time.time()) + self.chain.params.dispute_window
        payout = payout_script(
            job_id,
            testament.node_pubkey,
            params.client_pubkey,
            testament.commitment,
            params.model_id,
            params.timestamp,
            pay_time,
        )
        outputs = (TxOut(client.reward - PAYMENT_FEE, payout),)
        unsigned = Transaction(inputs=(TxIn(client.escrow.txid, client.escrow.index),), outputs=outputs, job_id=job_id)
        key = self._require_wallets().get().job_private_key(client.client_pubkey)
        signature = key.sign(unsigned.signature_hash(0, client.escrow_script, client.reward, SIGHASH_ALL))
        script_sig = escrow_script_sig(signature + bytes([SIGHASH_ALL]))
        payment = Transaction(
            inputs=(TxIn(client.escrow.txid, client.escrow.index, script_sig),), outputs=outputs, job_id=job_id
        )
        client.payment = payment
        self._manager.send_directed(
            testament.node, JobPayment.command, JobPayment(job_id, payment.to_bytes()).to_payload()
        )
        self.pool.advance(record, JobState.PAID)
        log.info("job %s: paid node %s with %s", _hex(job_id), testament.node.hex(), payment.txid())

    async def _on_delivery(self, peer: Peer, directed: Directed) -> None:
        delivery = _inner(JobDelivery, directed)
        if delivery is None:
            return
        client = self._client_jobs.get(delivery.job_id)
        record = self.pool.get(delivery.job_id)
        paid = record is not None and record.reached(JobState.PAID)
        if (
            client is None
            or record is None
            or not paid
            or client.testament is None
            or directed.sender != client.testament.node
        ):
            log.info(
                "delivery for %s from %s: not a job we paid that node for", _hex(delivery.job_id), directed.sender.hex()
            )
            return
        if record.reached(JobState.DELIVERED):
            return
        key = self._require_wallets().get().job_private_key(client.client_pubkey)
        try:
            plain = ecies.decrypt(key, delivery.sealed, aad=delivery.job_id)
        except ecies.DecryptionError as exc:
            log.warning("job %s: delivery does not decrypt: %s", _hex(delivery.job_id), exc)
            return
        if len(plain) % 4:
            log.warning("job %s: delivery is not a whole number of u32 tokens", _hex(delivery.job_id))
            return
        tokens = list(struct.unpack(f"<{len(plain) // 4}I", plain))
        self.pool.advance(record, JobState.DELIVERED)
        verdict, client.text, slash_at = await self._judge(record.params, tokens, client.testament.commitment)
        client.verdict = verdict
        if verdict == "verified":
            self.pool.advance(record, JobState.VERIFIED)
        elif verdict.startswith("failed"):
            self.pool.advance(record, JobState.DISPUTED)
            if slash_at is not None:
                self._spawn(self._slash(record, client, tokens, slash_at), f"job-slash-{_hex(delivery.job_id)[:16]}")
        log.info("job %s delivered: %s", _hex(delivery.job_id), client.verdict)

    async def _judge(
        self, params: JobParams, tokens: list[int], commitment: bytes
    ) -> tuple[str, str | None, int | None]:
        """(verdict, text, position): the commitment and RASTiC checked with our copy of the model, if we hold it.

        `position` is the first failure a fraud proof can win with (gap above EPS_SLASH, or structural),
        None if there is none: a smaller gap may be float noise between machines and slashes nobody.
        """
        engine = await self._engine_for(params.model_id)
        if engine is None:
            return "unverified: this node does not hold the model", None, None
        prompt_tokens = await engine.run(engine.tokenize, params.prompt)
        expected = output_commitment(
            params.model_id, prompt_tokens, tokens, params.max_tokens, params.seed, params.temperature
        )
        if expected != commitment:
            return "failed: the delivered output is not the one the node committed to", None, None
        verdict = await averify(engine, prompt_tokens, tokens, params.max_tokens, params.seed, params.temperature)
        text = await engine.run(engine.detokenize, tokens)
        if verdict.ok:
            return "verified", text, None
        slash_at = next((f.position for f in verdict.failures if f.gap > EPS_SLASH), None)
        return f"failed: RASTiC rejected {len(verdict.failures)} of {len(verdict.checked)} positions", text, slash_at

    async def _slash(self, record: JobRecord, client: ClientJob, tokens: list[int], position: int) -> None:
        """Take the STAKE and the PAYOUT to a fresh wallet address with a fraud proof at `position`, in one spend.

        The PAYOUT exists only once the payment is in the mempool or the chain, and the node may hold
        the payment back, so we publish it ourselves (waiting out the dispute window) and then spend
        both outputs together: one transaction, one model check. If the node's release took the
        PAYOUT first (its branch opens at t_pay), the stake alone is still ours to take.
        """
        testament, payment, params = client.testament, client.payment, record.params
        assert testament is not None and payment is not None  # a delivery is judged only after we paid
        stake = self._stake_script(record, testament)
        found = await self._wait_for_output(testament.stake_txid, stake, 1)
        engine = await self._engine_for(params.model_id)
        if found is None or engine is None:
            log.warning("job %s: the stake or the model is gone; cannot dispute", _hex(record.job_id))
            return
        prompt_tokens = await engine.run(engine.tokenize, params.prompt)
        proof = FraudProof(
            tuple(prompt_tokens),
            tuple(tokens),
            params.max_tokens,
            params.seed,
            params.temperature_milli,
            position,
            testament.signature,
        )
        give_up_at = self.pool.refund_time(params) + RELEASE_PATIENCE
        await self._publish(payment, give_up_at)  # refused as already known when the node published it first
        stake_in = (OutPoint(testament.stake_txid, found[0]), TxOut(found[1], stake))
        payout_in = (OutPoint(payment.hash, 0), payment.outputs[0])
        choices = [(stake_in, payout_in), (stake_in,)] if await self._holds(*payout_in) else [(stake_in,)]
        wallet = self._require_wallets().get()
        pay_to = p2pkh_script(hash160(wallet.new_job_key()))
        key = wallet.job_private_key(client.client_pubkey)
        for spent in choices:
            slash = _fraud_spend(record.job_id, spent, proof, key, pay_to)
            if await self._publish(slash, give_up_at):
                client.slash_txid = slash.txid()
                self.pool.advance(record, JobState.SLASHED)
                log.info(
                    "job %s: slashed %d outputs at position %d by %s",
                    _hex(record.job_id),
                    len(spent),
                    position,
                    slash.txid(),
                )
                return

    def _stake_script(self, record: JobRecord, testament: TestamentRecord) -> bytes:
        """The STAKE output the testament's node must have funded for this job."""
        params = record.params
        return stake_script(
            record.job_id,
            testament.node_pubkey,
            params.client_pubkey,
            testament.commitment,
            params.model_id,
            params.timestamp,
            self.pool.refund_time(params),
        )

    # -- compute node ----------------------------------------------------------------------------

    def _wants(self, record: JobRecord) -> bool:
        return (
            self._serving
            and not self._busy
            and record.client_node != self._node_id
            and self._models.store.get(record.params.model_id) is not None
        )

    async def _compute(self, record: JobRecord) -> None:
        try:
            await self._compute_and_stake(record)
        finally:
            self._busy = False

    async def _compute_and_stake(self, record: JobRecord) -> None:
        params, job_id = record.params, record.job_id
        escrow = escrow_script(job_id, params.client_pubkey, params.timestamp, self.pool.refund_time(params))
        found = await self._wait_for_output(record.escrow_txid, escrow, 1)
        if found is None:
            log.info("job %s: escrow %s not seen; not taking it", _hex(job_id), _hex(record.escrow_txid))
            return
        escrow_index, reward = found
        engine = await self._engine_for(params.model_id)
        assert engine is not None  # _wants checked that the store holds the model
        accept = JobAccept(job_id, self._node_id, self._node_key.sign(job_accept_digest(job_id, self._node_id)))
        self.pool.add_accept(accept.job_id, accept.node, accept.signature)
        self._manager.broadcast(accept)
        prompt_tokens = await engine.run(engine.tokenize, params.prompt)
        output = await engine.agenerate(prompt_tokens, params.max_tokens, params.seed, params.temperature)
        if self._cheat:
            output = await engine.run(tamper_output, engine, prompt_tokens, output)
            log.warning("job %s: --cheat-jobs: delivering a tampered output", _hex(job_id))
        commitment = output_commitment(
            params.model_id, prompt_tokens, output, params.max_tokens, params.seed, params.temperature
        )
        wallets = self._require_wallets()
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
            self.pool.refund_time(params),
        )
        created = wallet.create_script_payment(stake, reward * STAKE_MULTIPLE, job_id)
        await wallets.send(wallet, created)
        stake_index = next(i for i, out in enumerate(created.tx.outputs) if out.script_pubkey == stake)
        self._work[job_id] = ComputeJob(
            output,
            node_pubkey,
            commitment,
            OutPoint(record.escrow_txid, escrow_index),
            escrow,
            reward,
        )
        self._spawn(
            self._release(
                job_id,
                work_key=node_pubkey,
                locked=created.tx.outputs[stake_index],
                outpoint=OutPoint(created.tx.hash, stake_index),
                release_time=self.pool.refund_time(params),
            ),
            f"job-reclaim-{_hex(job_id)[:16]}",
        )
        testament = JobTestament(job_id, self._node_id, node_pubkey, commitment, signature, created.tx.hash)
        self.pool.add_testament(
            job_id, TestamentRecord(self._node_id, node_pubkey, commitment, signature, created.tx.hash)
        )
        self._manager.broadcast(testament)
        log.info("job %s: generated %d tokens, staked in %s", _hex(job_id), len(output), created.tx.txid())

    async def _on_payment(self, peer: Peer, directed: Directed) -> None:
        message = _inner(JobPayment, directed)
        if message is None:
            return
        work = self._work.get(message.job_id)
        record = self.pool.get(message.job_id)
        if work is None or record is None or work.payment_txid is not None:
            return
        try:
            tx = Transaction.from_bytes(message.tx)
        except ValueError as exc:
            log.warning(
                "job %s: payment from %s is no transaction: %s", _hex(message.job_id), directed.sender.hex(), exc
            )
            return
        problem = payment_problem(tx, message.job_id, work, record.params, self.pool.refund_time(record.params))
        if problem is not None:
            log.warning("job %s: refusing payment %s: %s", _hex(message.job_id), tx.txid(), problem)
            return
        work.payment_txid = tx.txid()
        self.pool.advance(record, JobState.PAID)
        plain = struct.pack(f"<{len(work.output_tokens)}I", *work.output_tokens)
        sealed = ecies.encrypt(PublicKey.from_bytes(record.params.client_pubkey), plain, aad=message.job_id)
        self._manager.send_directed(
            record.client_node, JobDelivery.command, JobDelivery(message.job_id, sealed).to_payload()
        )
        self.pool.advance(record, JobState.DELIVERED)
        log.info("job %s: paid by %s, output delivered", _hex(message.job_id), tx.txid())
        self._spawn(self._publish(tx, self.pool.refund_time(record.params)), f"job-publish-{tx.txid()[:16]}")
        lock = match_job_lock(tx.outputs[0].script_pubkey)
        assert lock is not None  # _payment_problem checked output 0
        self._spawn(
            self._release(message.job_id, work.node_pubkey, tx.outputs[0], OutPoint(tx.hash, 0), lock.release_time),
            f"job-claim-{_hex(message.job_id)[:16]}",
        )

    async def _publish(
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

    async def _release(
        self, job_id: bytes, work_key: bytes, locked: TxOut, outpoint: OutPoint, release_time: int
    ) -> None:
        """Take a STAKE or PAYOUT of ours into the wallet through the time-locked branch once the chain allows it.

        The mempool refuses the spend until the median time past passes release_time (lock time) and the
        job's dispute window; we retry until then. Nobody else can spend it before release_time but the
        client with a fraud proof, after which the input is gone and we stop: an output we saw once and
        no longer find in the mempool or the UTXO set was spent.
        """
        wallets = self._require_wallets()
        pay_to = p2pkh_script(hash160(wallets.get().new_job_key()))
        seen = await self._holds(outpoint, locked)
        while time.time() < release_time + RELEASE_PATIENCE:
            await asyncio.sleep(1.0)
            present = await self._holds(outpoint, locked)
            if seen and not present:
                log.warning(
                    "job %s: %s:%d was taken by another spend (a fraud proof?); not releasing it",
                    _hex(job_id),
                    _hex(outpoint.txid),
                    outpoint.index,
                )
                return
            seen = seen or present
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
                await self.chain.submit_transaction(spend)
            except TxRejected as exc:
                if exc.reason in RETRY_REASONS:
                    continue
                log.info("job %s: releasing %s stopped: %s", _hex(job_id), _hex(outpoint.txid), exc)
                return
            log.info("job %s: released %d from %s into the wallet", _hex(job_id), locked.value, _hex(outpoint.txid))
            return
        log.warning("job %s: gave up releasing %s:%d", _hex(job_id), _hex(outpoint.txid), outpoint.index)

    # -- shared ----------------------------------------------------------------------------------

    async def _engine_for(self, model_id: bytes) -> Engine | None:
        """An engine for a model in our store, loaded off the event loop; one is kept loaded at a time."""
        if self._models.store.get(model_id) is None:
            return None
        if self._engine is None or self._engine.path != self._models.store.model_path(model_id):
            old, self._engine = self._engine, await asyncio.to_thread(Engine, self._models.store.model_path(model_id))
            # Block and mempool validation judge fraud proofs for this model with it (jobs-design "asymmetric rule").
            self.chain.chainstate.job_verifier = EngineProofVerifier({model_id: self._engine})
            if old is not None:
                await old.run(old.close)
        return self._engine

    async def _wait_for_output(self, txid: bytes, script: bytes, min_value: int) -> tuple[int, int] | None:
        """(index, value) of the output of `txid` paying `script` at least `min_value`, seen in the mempool or chain."""
        deadline = time.monotonic() + SEEN_WAIT
        while time.monotonic() < deadline:
            found = await self.chain.call(self._find_output, txid, script)
            if found is not None:
                return found if found[1] >= min_value else None
            await asyncio.sleep(POLL)
        return None

    async def _holds(self, outpoint: OutPoint, locked: TxOut) -> bool:
        """True while the mempool or the UTXO set shows `locked` at `outpoint`'s transaction."""
        return await self.chain.call(self._find_output, outpoint.txid, locked.script_pubkey) is not None

    def _find_output(self, txid: bytes, script: bytes) -> tuple[int, int] | None:
        """Chain thread: the output of `txid` paying `script`, from the mempool or the UTXO set."""
        entry = self.chain.mempool.get(txid)
        if entry is not None:
            outputs = list(enumerate(entry.tx.outputs))
        else:
            coins = ((i, self.chain.chainstate.get_coin(OutPoint(txid, i))) for i in range(MAX_OUTPUTS_SEARCHED))
            outputs = [(i, coin.tx_out) for i, coin in coins if coin is not None]
        return next(((i, out.value) for i, out in outputs if out.script_pubkey == script), None)

    def _spawn(self, coroutine: Coroutine[Any, Any, object], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())


def _fraud_spend(
    job_id: bytes, spent: tuple[tuple[OutPoint, TxOut], ...], proof: FraudProof, key: PrivateKey, pay_to: bytes
) -> Transaction:
    """The client's spend of job locks `spent` through the fraud-proof branch, less SLASH_FEE, to `pay_to`."""
    outputs = (TxOut(sum(out.value for _, out in spent) - SLASH_FEE, pay_to),)
    unsigned = Transaction(
        inputs=tuple(TxIn(outpoint.txid, outpoint.index) for outpoint, _ in spent), outputs=outputs, job_id=job_id
    )
    script_sigs = [
        fraud_proof_script_sig(
            key.sign(unsigned.signature_hash(i, out.script_pubkey, out.value, SIGHASH_ALL)) + bytes([SIGHASH_ALL]),
            proof,
        )
        for i, (_, out) in enumerate(spent)
    ]
    inputs = tuple(
        TxIn(outpoint.txid, outpoint.index, script_sig)
        for (outpoint, _), script_sig in zip(spent, script_sigs, strict=True)
    )
    return Transaction(inputs=inputs, outputs=outputs, job_id=job_id)


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


_Inner = TypeVar("_Inner", JobPayment, JobDelivery)


def _inner(message_type: type[_Inner], directed: Directed) -> _Inner | None:
    """Decode a directed payload; None (logged) if malformed. The relay that brought it cannot check it, so no blame."""
    try:
        return message_type.from_payload(directed.payload)
    except ProtocolViolation as exc:
        log.warning("directed %s from %s: %s", directed.inner_command, directed.sender.hex(), exc.reason)
        return None


def _hex(hash_bytes: bytes) -> str:
    """A Job ID or txid as RPC shows it (reversed, like txids)."""
    return hash_bytes[::-1].hex()
