"""The client side of a job (whitepaper 2.4, docs/jobs-design.md): what a node does for the jobs it submits.

submitjob builds JobParams with a fresh wallet key Pc, funds the ESCROW output, signs and broadcasts the job.
It weighs every testament (signed by its node's key, so none can be forged under another node's id): the
first whose stake transaction shows, from a node that never failed one of our checks, is paid: the client
moves the escrow to that node's PAYOUT and sends it the payment. On delivery it decrypts (ECIES, aad = Job
ID) and, if this node holds the model, checks the commitment and runs RASTiC. A failure beyond what float noise explains
(gap > EPS_SLASH, or structural) that the reference pass confirms is disputed: the client publishes the payment
itself and moves the STAKE and the PAYOUT, with a bond, into the RASTiC dispute game (move 0), which the
GameDriver plays on; the job is slashed when the game's win is mined. A paid job with no delivery from its
node by the deadline D is disputed too ("failed: not delivered"): the client takes the STAKE and the PAYOUT
back through their claim branches once the chain allows it (a delivery mined before D spent the STAKE; the
client publishes its payment when it pays, since the claim needs it mined before D - W). A delivery is read from the
signed jobdelivery message or from the delivery transaction in the mempool or a block, whichever comes
first. A job never paid gets its escrow back through the refund branch at its refund time. It knows the
compute side only through the pool's records.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from camelid.chain.jobpool import (
    TRANSITIONS,
    DeliveryRecord,
    JobRecord,
    JobState,
    TestamentRecord,
    job_accept_digest,
    job_offer_digest,
)
from camelid.compute.rastic import EPS_SLASH, structural_failures
from camelid.compute.vocab import ModelVocab
from camelid.compute.worker_client import EngineUnavailable
from camelid.core.deliveryproof import MALFORMED_REVEAL, BadDeliveryProof, delivery_fault, reveal_would_expose
from camelid.core.job import JobParams, job_tokens_problem
from camelid.core.jobgame import MIN_GAME_BOND, Challenge, Game
from camelid.core.jobscripts import JOB_PAYOUT_FEE_CAP, CommittedOutput, FraudProof, match_job_lock, output_commitment
from camelid.core.private_prompt import RevealedPrompt, hide, seal_prompt, sealed_prompt_digest
from camelid.core.script import p2pkh_script
from camelid.core.transaction import OutPoint, Transaction, TxOut
from camelid.crypto import ecies
from camelid.crypto.hashes import hash160, sha256
from camelid.crypto.keys import PublicKey, verify_signature
from camelid.node.config import Misbehaviour
from camelid.node.jobs.common import (
    RELEASE_FEE,
    RELEASE_PATIENCE,
    STAKE_MULTIPLE,
    JobContext,
    TimedSpend,
    decode_directed,
    hex_id,
)
from camelid.node.jobs.contract import Spent
from camelid.node.jobs.game import KEY_HOLD, GameDriver, GamePlay, Side, fund_coin
from camelid.node.jobs.game import Outcome as GameOutcome
from camelid.node.jobs.scheduler import patience
from camelid.node.jobs.verdict import NOT_DELIVERED, VERIFIED, Cause, Outcome, Verdict, failed, unverified
from camelid.node.jobs.verify import OutsourcedVerification
from camelid.p2p.messages import JobAccept, JobMessage, JobPayment, JobPrompt

if TYPE_CHECKING:
    from camelid.p2p.messages import Directed
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)

PAYMENT_FEE = 20_000
"""Fee the client leaves when moving the escrow to the PAYOUT (~40 per byte; under JOB_PAYOUT_FEE_CAP)."""
DEFAULT_TIMELOCK = 1800
"""Seconds a node has to deliver (JobParams.timelock) unless submitjob says otherwise: three dispute windows on
mainnet, since a payment waits one out and must be mined a window before D to back a non-delivery claim
(jobrules.check_job_claims); compute nodes decline less than two (the delivery must be mined before D)."""
SLASH_FEE = 100_000
"""Fee of the client's bad-delivery proof (a 9.6 KB blob and a reveal): ~10 per byte."""
OPEN_FEE = 100_000
"""Fee of move 0 (STAKE + PAYOUT with a 2,210-token fraud proof each, and the bond): >= 5 per byte."""
VERIFY_MODES = ("full", "spot", "off")
SPOT_NONCE_SIZE = 16
"""Random bytes that choose the spot positions: the node cannot know them when it commits."""
JUDGE_ATTEMPTS = 3
"""Checks of one delivery cut short by a dying llama.cpp worker before the client leaves it unverified."""
NOT_COMMITTED = failed(Cause.NOT_COMMITTED, "the delivered output is not the one the node committed to")


@dataclass
class ClientJob:
    """A job this node submitted: the key it holds, the escrow, and what came back."""

    escrow: OutPoint
    escrow_script: bytes
    reward: int
    client_pubkey: bytes
    verify: str = "full"  # VERIFY_MODES: how the delivery is checked
    testament: TestamentRecord | None = None  # the one we pay (or check the stake of, before paying)
    verdict: Verdict | None = None
    text: str | None = None
    cancelled: bool = False
    payment: Transaction | None = None  # the escrow spend we sent the node; we publish it ourselves to dispute
    slash_txid: str | None = None  # our bad-delivery proof or non-delivery claim once in the mempool; our game's win
    game: GamePlay | None = None  # the dispute game we opened on the delivery
    refund_txid: str | None = None  # our escrow refund of a job never paid, once the mempool took it
    checked_by: list[str] | None = None  # node ids of the verifiers that passed it; [] when checked locally
    tokens: list[int] | None = None  # the delivered output, once opened
    prompt: str = ""  # the private prompt: the job carries only its commitment (camelid.core.private_prompt)
    prompt_salt: bytes = b""
    chosen: bytes | None = None  # the accepter we sent the prompt to
    chosen_at: float = 0.0  # when: another accepter is chosen only once its patience has run out

    @property
    def revealed(self) -> RevealedPrompt:
        return RevealedPrompt(self.prompt, self.prompt_salt)

    @property
    def escrow_spent(self) -> Spent:
        return Spent(self.escrow, TxOut(self.reward, self.escrow_script))


class JobClient:
    """This node's submitted jobs (`jobs`, by Job ID), from escrow to verdict and, if cheated, the slash."""

    def __init__(
        self, ctx: JobContext, verifiers: OutsourcedVerification, games: GameDriver, misbehave: Misbehaviour | None
    ) -> None:
        """`verifiers` check deliveries for models we do not hold; `games` plays the disputes we open;
        `misbehave` (regtest only): NEVER_PAY pays none."""
        self._ctx = ctx
        self._games = games
        self._verifiers = verifiers
        self._never_pay = misbehave is Misbehaviour.NEVER_PAY
        self.jobs: dict[bytes, ClientJob] = {}

    async def submit(
        self,
        prompt: str,
        max_tokens: int,
        model_id: bytes,
        seed: int,
        temperature_milli: int,
        reward: int,
        timelock: int = DEFAULT_TIMELOCK,
        verify: str = "full",
    ) -> bytes:
        """submitjob: fund the escrow, publish the job; the Job ID. ValueError/WalletError for bad input.

        `verify`: RASTiC on the delivery at every position ("full"), at a random sample ("spot": cheaper,
        but a near-miss model can pass) or not at all ("off": the text is returned unchecked).
        """
        if verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
        ctx = self._ctx
        revealed, length, unit = hide(prompt, await self._count_tokens(prompt, max_tokens, model_id))
        wallets = ctx.require_wallets()
        wallet = wallets.get()
        client_pubkey = wallet.new_job_key()
        params = JobParams(
            model_id,
            revealed.commitment(),
            length,
            unit,
            max_tokens,
            seed,
            temperature_milli,
            int(time.time()),
            timelock,
            client_pubkey,
            "",  # client_host/port: informational; deliveries are routed to our node id
            ctx.manager.listen_port or ctx.chain.params.default_port,
        )
        terms = ctx.terms(params)
        job_id, script = terms.job_id, terms.escrow_script
        # Pc signs the payment, opens the delivery and takes back escrow or stake until the refund time
        # and after: held, so that a relocking wallet cannot cost us the job.
        wallet.hold_job_key(client_pubkey, terms.refund_time + RELEASE_PATIENCE)
        created = await wallets.pay(wallet, lambda: wallet.create_script_payment(script, reward, job_id))
        escrow_index = next(i for i, out in enumerate(created.tx.outputs) if out.script_pubkey == script)
        escrow_txid = created.tx.hash
        message = JobMessage(
            params.to_bytes(),
            escrow_txid,
            ctx.node_id,
            wallet.sign_job_digest(client_pubkey, job_offer_digest(job_id, escrow_txid, ctx.node_id)),
        )
        self.jobs[job_id] = ClientJob(
            OutPoint(escrow_txid, escrow_index), script, reward, client_pubkey, verify, prompt=prompt,
            prompt_salt=revealed.salt,
        )
        ctx.pool.add_job(message.params, message.escrow_txid, message.client_node, message.signature)
        ctx.manager.broadcast(message)
        ctx.spawn(self._close_unfinished(job_id), f"job-close-{hex_id(job_id)[:16]}")
        if verify != "off":
            ctx.spawn(self._prefill(params, prompt), f"job-prefill-{hex_id(job_id)[:16]}")
        log.info("job %s submitted: escrow %s, reward %d", hex_id(job_id), created.tx.txid(), reward)
        return job_id

    async def _count_tokens(self, prompt: str, max_tokens: int, model_id: bytes) -> int | None:
        """The prompt's tokens, counted with the model or its vocabulary where the store holds the file (None
        without it: the job then declares the UTF-8 length); ValueError if they and max_tokens exceed what one
        delivery carries on chain (without the model a compute node counts, and declines such a job)."""
        try:
            engine = await self._ctx.engine_for(model_id)
            if engine is not None:
                count: int | None = len(await engine.tokenize(prompt))
            else:
                count = await self._vocab_count(prompt, model_id)
        except EngineUnavailable:
            count = await self._vocab_count(prompt, model_id)
        problem = None if count is None else job_tokens_problem(count, max_tokens)
        if problem is not None:
            raise ValueError(f"the job cannot be delivered: {problem}")
        return count

    async def _vocab_count(self, prompt: str, model_id: bytes) -> int | None:
        store = self._ctx.models.store
        if store.get(model_id) is None:
            return None
        vocab = await asyncio.to_thread(ModelVocab, store.model_path(model_id))
        try:
            return len(vocab.tokenize(prompt))
        finally:
            vocab.close()

    def on_accept(self, job_id: bytes, node: bytes) -> None:
        """A node accepted a job of ours: the first accepter is sent the private prompt, sealed to its node key and
        signed by Pc; a later one only once the chosen node's patience ran out without a testament. Only the
        node holding the prompt can compute the job, so this choice settles claims made at the same moment."""
        client, record = self.jobs.get(job_id), self._ctx.pool.get(job_id)
        if client is None or record is None or client.cancelled or client.testament is not None or not client.prompt:
            return
        now, chosen = time.time(), client.chosen
        if chosen is not None and (chosen in record.testaments or now < client.chosen_at + patience(
            record.params.max_tokens
        )):
            return
        sealed = seal_prompt(PublicKey.from_bytes(node), job_id, client.revealed)
        signature = self._ctx.require_wallets().get().sign_job_digest(
            client.client_pubkey, sealed_prompt_digest(job_id, node, sealed)
        )
        client.chosen, client.chosen_at = node, now
        self._ctx.manager.send_directed(node, JobPrompt.command, JobPrompt(job_id, sealed, signature).to_payload())
        log.info("job %s: prompt sent to node %s, whose accept we chose", hex_id(job_id), node.hex())

    async def on_directed_accept(self, peer: Peer, directed: Directed) -> None:
        """A jobaccept its node sent us directly as well as flooded: the pool keeps and relays at most
        MAX_ACCEPTS_PER_JOB accepts per job, so throwaway accepts under made-up ids could otherwise keep a real
        accepter's claim, and so our prompt, from reaching it."""
        accept = decode_directed(JobAccept, directed)
        if accept is None or accept.job_id not in self.jobs:
            return
        if not verify_signature(accept.node, accept.signature, job_accept_digest(accept.job_id, accept.node)):
            log.info("job %s: directed jobaccept not signed by its node %s; dropped", hex_id(accept.job_id),
                     accept.node.hex())
            return
        self.on_accept(accept.job_id, accept.node)

    async def _prefill(self, params: JobParams, prompt: str) -> None:
        """While a compute node generates, decode the prompt into our model's checking cache, so that the
        delivery's RASTiC check prefills only the output (docs/rastic.md, "Prompt prefilled ahead"). Best
        effort: a check that finds no prefill is as sound, only slower."""
        try:
            engine = await self._ctx.engine_for(params.model_id)
            if engine is not None:
                await engine.prefill(await engine.tokenize(prompt))
        except (EngineUnavailable, ValueError) as exc:  # a worker restarting, a prompt the context cannot hold
            log.debug("job prompt not prefilled: %s", exc)

    def cancel(self, job_id: bytes) -> None:
        """canceljob: stop our own job before it is paid (the escrow refund after its refund time comes later)."""
        client = self.jobs.get(job_id)
        record = self._ctx.pool.get(job_id)
        if client is None or record is None:
            raise ValueError(f"job {hex_id(job_id)} is not one this node submitted")
        if record.reached(JobState.PAID):
            raise ValueError(f"job {hex_id(job_id)} is already paid")
        if JobState.CANCELLED not in TRANSITIONS[record.state]:
            raise ValueError(f"job {hex_id(job_id)} is {record.state} and can no longer be cancelled")
        client.cancelled = True
        self._ctx.pool.advance(record, JobState.CANCELLED)

    def resume(self, job_id: bytes) -> None:
        """After a restart, pick up an open job of ours where it stood: paying, judging, claiming or refunding.

        A payment we chose but had not signed is chosen again; one we signed is submitted again (the mempool
        is not kept, and a claim needs it mined before D - W); a delivery already in the pool is judged
        (again, if the dispute it started had not reached the mempool); the deadline watcher starts over.
        """
        ctx = self._ctx
        client, record = self.jobs[job_id], ctx.pool.get(job_id)
        if record is None or record not in ctx.pool.open_jobs():
            return
        ctx.spawn(self._close_unfinished(job_id), f"job-close-{hex_id(job_id)[:16]}")
        if client.payment is None:
            client.testament = None
            for testament in record.testaments.values():
                self.on_testament(job_id, testament)
            return
        deadline = ctx.terms(record.params).deadline
        ctx.spawn(ctx.publish(client.payment, deadline), f"job-publish-{client.payment.txid()[:16]}")
        verdict = client.verdict
        if verdict is not None and (
            verdict.cause not in (Cause.RASTIC, Cause.BAD_DELIVERY)
            or (client.game is not None and verdict.cause is Cause.RASTIC)
        ):
            return  # a bad-delivery proof is slashed only once mined: one still in a lost mempool is made again
        client.verdict = None
        delivery = record.deliveries.get(client.testament.node_pubkey) if client.testament else None
        if delivery is not None:
            self._ctx.spawn(self.on_delivery(job_id, delivery), f"job-judge-{hex_id(job_id)[:16]}")

    def on_testament(self, job_id: bytes, testament: TestamentRecord) -> None:
        """A valid testament reached the pool: weigh it for a job of ours we have not paid yet.

        Every testament is weighed, not only the first: each is checked for its stake, and the first whose
        stake shows, from a node whose delivery we never judged failed, is paid (`_pay_if_staked`).
        """
        client = self.jobs.get(job_id)
        if client is None or client.testament is not None or client.cancelled:
            return
        if self._never_pay:
            log.warning("job %s: --misbehave=never-pay: not paying node %s", hex_id(job_id), testament.node.hex())
        elif testament.node in self.bad_nodes():
            log.info("job %s: not paying node %s: it cheated us before", hex_id(job_id), testament.node.hex())
        else:
            self._ctx.spawn(self._pay_if_staked(job_id, client, testament), f"job-pay-{hex_id(job_id)[:16]}")

    def bad_nodes(self) -> set[bytes]:
        """Node ids whose delivery to one of our jobs failed its check."""
        return {
            c.testament.node
            for c in self.jobs.values()
            if c.testament is not None and c.verdict is not None and c.verdict.failed and c.payment is not None
        }

    async def _pay_if_staked(self, job_id: bytes, client: ClientJob, testament: TestamentRecord) -> None:
        ctx = self._ctx
        record = ctx.pool.get(job_id)
        if record is None:
            return
        terms = ctx.terms(record.params)
        stake = terms.stake_script(testament.node_pubkey, testament.commitment)
        found = await ctx.wait_for_output(testament.stake_txid, stake, client.reward * STAKE_MULTIPLE)
        if found is None:
            log.info("job %s: node %s's stake %s never showed; not paying it", hex_id(job_id),
                     testament.node.hex(), hex_id(testament.stake_txid))
            return
        if found[1] > client.reward - PAYMENT_FEE + JOB_PAYOUT_FEE_CAP:  # our PAYOUT could not claim it back
            log.info("job %s: node %s staked %d, more than our payment can claim; not paying it", hex_id(job_id),
                     testament.node.hex(), found[1])
            return
        if client.testament is not None or client.cancelled:  # another testament's stake showed first
            return
        client.testament = testament
        payment = terms.payment(
            client.escrow_spent, testament.node_pubkey, testament.commitment, PAYMENT_FEE, ctx.require_wallets().get()
        )
        client.payment = payment
        ctx.manager.send_directed(
            testament.node, JobPayment.command, JobPayment(job_id, payment.to_bytes()).to_payload()
        )
        ctx.pool.record_payment(payment, published=False)
        log.info("job %s: paid node %s with %s", hex_id(job_id), testament.node.hex(), payment.txid())
        # Published at once: a non-delivery claim needs the PAYOUT mined before D - W (jobrules.check_job_claims).
        await ctx.publish(payment, terms.deadline)

    async def on_delivery(self, job_id: bytes, delivery: DeliveryRecord) -> None:
        """A signed delivery reached the pool: open and judge it if it is the one we paid for."""
        ctx = self._ctx
        client = self.jobs.get(job_id)
        record = ctx.pool.get(job_id)
        if (
            client is None
            or record is None
            or client.payment is None
            or client.testament is None
            or delivery.node != client.testament.node
            or not self._judges(client, delivery)
        ):
            return
        try:
            plain = ctx.require_wallets().get().open_job_delivery(client.client_pubkey, delivery.sealed, job_id)
        except ecies.DecryptionError as exc:
            self._bad_delivery(record, client, delivery, f"the delivery does not decrypt ({exc})")
            return
        fault = delivery_fault(record.params.model_id, client.testament.commitment, plain)  # no model needed
        if fault is not None:
            self._bad_delivery(record, client, delivery, fault)
            return
        body = CommittedOutput.from_body(plain)
        params = record.params
        if (body.max_tokens, body.seed, body.temperature) != (params.max_tokens, params.seed, params.temperature):
            # C commits to these fields, so no bad-delivery proof: the RASTiC proof is the one that applies.
            client.verdict = failed(Cause.NOT_COMMITTED, "the node committed to other max_tokens, seed or temperature")
            ctx.pool.advance(record, JobState.DISPUTED)
            return
        tokens = list(body.output_tokens)
        client.tokens = tokens
        verdict, client.text, slash_at = await self._judge_despite_crashes(record, tokens, client)
        client.verdict = verdict
        if record.reached(JobState.SLASHED):  # a delivery after we took the stake: its verdict is for the record
            ctx.pool.on_change(job_id)
        elif verdict.outcome is Outcome.VERIFIED:
            ctx.pool.advance(record, JobState.VERIFIED)
        elif verdict.failed:
            ctx.pool.advance(record, JobState.DISPUTED)
            if slash_at is not None:
                ctx.spawn(self._challenge(record, client, tokens, slash_at), f"job-game-{hex_id(job_id)[:16]}")
        else:
            ctx.pool.on_change(job_id)  # an "unverified" verdict changes our record, not the job's state
        log.info("job %s delivered: %s", hex_id(job_id), client.verdict)

    @staticmethod
    def _judges(client: ClientJob, delivery: DeliveryRecord) -> bool:
        """Whether `delivery` gets a verdict: none yet, a late one after NOT_DELIVERED, or the blob read from the
        chain after a flooded one that did not open (the chain's binds the node: JobPool.record_delivery_tx)."""
        verdict = client.verdict
        return (
            verdict in (None, NOT_DELIVERED)
            or (verdict.cause is Cause.BAD_DELIVERY and client.slash_txid is None and delivery.from_chain)
        )

    def _bad_delivery(self, record: JobRecord, client: ClientJob, delivery: DeliveryRecord, why: str) -> None:
        """A delivery from our node that is not its committed output: failed, and its stake ours by a bad-delivery
        proof once the delivery is on chain (docs/jobs-design.md, "Bad deliveries, proven with the DLEQ reveal")."""
        client.verdict = failed(Cause.BAD_DELIVERY, why)
        self._ctx.pool.advance(record, JobState.DISPUTED)
        log.warning("job %s: %s", hex_id(record.job_id), why)
        self._ctx.spawn(self._prove_bad_delivery(record, client, delivery), f"job-prove-{hex_id(record.job_id)[:16]}")

    async def _prove_bad_delivery(self, record: JobRecord, client: ClientJob, delivery: DeliveryRecord) -> None:
        """Take the DELIVERED output with the bad-delivery proof; `slashed` once a block holds the spend.

        The proof must carry the blob the DELIVERED lock commits to, so we wait for the delivery transaction
        (the node floods its message once its mempool took it). We reveal our shared point only for a blob
        whose ephemeral key no other delivery to this job's key carries: a node that copied another node's key
        into garbage would otherwise have us publish what opens the other node's delivery.
        """
        ctx, job_id = self._ctx, record.job_id
        terms = ctx.terms(record.params)
        give_up_at = terms.refund_time + RELEASE_PATIENCE
        earlier = client.slash_txid
        if earlier is not None and await ctx.chain.call(self._standing, bytes.fromhex(earlier)[::-1]):
            await self._slashed_when_mined(record, client, give_up_at)  # ours from before a restart, still standing
            return
        delivered = await self._delivered_output(record, delivery.node_pubkey, give_up_at)
        lock = None if delivered is None else match_job_lock(delivered.out.script_pubkey)
        if delivered is None or lock is None or lock.delivery_hash != sha256(delivery.sealed):
            log.warning("job %s: no delivery transaction carries the bad blob; nothing to prove", hex_id(job_id))
            return
        others = [d.sealed for key, d in record.deliveries.items() if key != delivery.node_pubkey]
        if reveal_would_expose(delivery.sealed, others):
            log.warning("job %s: the bad delivery reuses another delivery's ephemeral key: no reveal", hex_id(job_id))
            return
        try:
            reveal = ctx.require_wallets().get().reveal_job_delivery(client.client_pubkey, delivery.sealed)
        except ecies.DecryptionError:  # no ephemeral key: a malformed blob is proven without a reveal
            reveal = MALFORMED_REVEAL
        proof = BadDeliveryProof(delivery.sealed, reveal)
        wallet = ctx.require_wallets().get()
        pay_to = p2pkh_script(hash160(wallet.new_job_key()))
        spend = terms.slash(delivered, proof, pay_to, SLASH_FEE, wallet)
        if not await ctx.publish(spend, give_up_at):
            return
        client.slash_txid = spend.txid()
        ctx.pool.on_change(job_id)
        await self._slashed_when_mined(record, client, give_up_at)

    def _standing(self, txid: bytes) -> bool:
        """Chain thread: whether our spend `txid` is in the mempool or a block."""
        return txid in self._ctx.chain.mempool or self._ctx.confirmations(txid) > 0

    async def _slashed_when_mined(self, record: JobRecord, client: ClientJob, give_up_at: float) -> None:
        """`slashed` once a block holds our proof (`client.slash_txid`): one in a mempool alone takes nothing."""
        assert client.slash_txid is not None
        txid = bytes.fromhex(client.slash_txid)[::-1]
        while time.time() < give_up_at:
            if await self._ctx.chain.call(self._ctx.confirmations, txid):
                self._ctx.pool.advance(record, JobState.SLASHED)
                log.info("job %s: bad delivery slashed by %s", hex_id(record.job_id), client.slash_txid)
                return
            await asyncio.sleep(1.0)

    async def _delivered_output(self, record: JobRecord, node_pubkey: bytes, give_up_at: float) -> Spent | None:
        """The DELIVERED output of the node's delivery transaction, once our pool saw one (None if none came)."""
        while time.time() < give_up_at:
            txid = record.delivery_txids.get(node_pubkey)
            if txid is not None:
                out = await self._ctx.output_at(OutPoint(txid, 0))
                return None if out is None else Spent(OutPoint(txid, 0), out)
            await asyncio.sleep(1.0)
        return None

    async def _judge_despite_crashes(
        self, record: JobRecord, tokens: list[int], client: ClientJob
    ) -> tuple[Verdict, str | None, int | None]:
        """_judge, again if the llama.cpp worker dies during it: a crash is no verdict on the output."""
        for _ in range(JUDGE_ATTEMPTS):
            try:
                return await self._judge(record, tokens, client)
            except EngineUnavailable as exc:
                log.warning("job %s: its check was cut short (%s); checking again", hex_id(record.job_id), exc)
        dying = "the model's llama.cpp worker kept dying while checking this job"
        return unverified(Cause.UNCHECKABLE, dying), None, None

    async def _judge(
        self, record: JobRecord, tokens: list[int], client: ClientJob
    ) -> tuple[Verdict, str | None, int | None]:
        """(verdict, text, position): the commitment and RASTiC checked with our copy of the model, or by neighbours.

        `position` is the first failure a fraud proof can win with (gap above EPS_SLASH, or structural),
        None if there is none: a smaller gap may be float noise between machines and slashes nobody.
        Without the model we cannot build a fraud proof, so an outsourced failure slashes nobody.
        """
        params, testament = record.params, client.testament
        assert testament is not None  # only the delivery of the node we paid is judged
        commitment = testament.commitment
        engine = await self._ctx.engine_when_ready(params.model_id)
        if engine is None:
            verdict, text = await self._judge_elsewhere(record, tokens, client)
            return verdict, text, None
        client.checked_by = []
        prompt_tokens = await engine.tokenize(client.prompt)
        expected = output_commitment(
            params.model_id, prompt_tokens, tokens, params.max_tokens, params.seed, params.temperature
        )
        if expected != commitment:
            return NOT_COMMITTED, None, None
        try:
            text = await engine.detokenize(tokens)
        except ValueError as exc:  # token ids the model does not have
            return failed(Cause.NOT_TEXT, f"the output is not text of this model ({exc})"), None, None
        if client.verify == "off":
            return unverified(Cause.SWITCHED_OFF, "verification switched off for this job"), text, None
        verdict = await engine.verify(
            prompt_tokens,
            tokens,
            params.max_tokens,
            params.seed,
            params.temperature,
            mode=client.verify,
            nonce=os.urandom(SPOT_NONCE_SIZE),
        )
        if verdict.ok:
            return VERIFIED, text, None
        slash_at = next((f.position for f in verdict.failures if f.gap > EPS_SLASH), None)
        rejected = f"RASTiC rejected {len(verdict.failures)} of {len(verdict.checked)} positions"
        return failed(Cause.RASTIC, rejected), text, slash_at

    async def _judge_elsewhere(
        self, record: JobRecord, tokens: list[int], client: ClientJob
    ) -> tuple[Verdict, str | None]:
        """(verdict, text) of a delivery whose model cannot run here: read with the model's vocabulary (a
        vocab-only load of the file, when the store holds it), checked by `verifiers.needed` neighbours.

        Without the model file the text stays unknown (getjob shows the verified tokens): a verifier's word
        for the text would be a claim nobody could hold it to.
        """
        params, testament = record.params, client.testament
        assert testament is not None
        text = None
        store = self._ctx.models.store
        path = store.model_path(params.model_id) if store.get(params.model_id) is not None else None
        if path is not None:
            vocab = await asyncio.to_thread(ModelVocab, path)
            try:
                prompt_tokens = vocab.tokenize(client.prompt)
                expected = output_commitment(
                    params.model_id, prompt_tokens, tokens, params.max_tokens, params.seed, params.temperature
                )
                if expected != testament.commitment:
                    return NOT_COMMITTED, None
                text = vocab.detokenize(tokens)
            except ValueError as exc:
                return failed(Cause.NOT_TEXT, f"the output is not text of this model ({exc})"), None
            finally:
                vocab.close()
        if client.verify == "off":
            return unverified(Cause.SWITCHED_OFF, "verification switched off for this job"), text
        outcome = await self._verifiers.ask(
            record.job_id, params.model_id, testament.node, testament.commitment, tokens, client.revealed
        )
        client.checked_by = outcome.checked_by
        return outcome.verdict, None if outcome.verdict.failed else text

    async def _challenge(self, record: JobRecord, client: ClientJob, tokens: list[int], position: int) -> None:
        """Move 0 of the dispute game at the failed `position`: the STAKE (or DELIVERED) and the PAYOUT, with a bond,
        into a GAME output, by a fraud-proof spend that no miner needs the model to check.

        We challenge only when the reference pass agrees (`GamePlayer.choose_token`: its j* scores more than
        EPS_SLASH above the output's token; for a structural fault any j* but that token), since below that the
        accused's true answer holds and our bond is its. The PAYOUT exists only once the payment is in the mempool
        or the chain, and the node may hold the payment back, so we publish it ourselves; if the node's release
        took the PAYOUT first (its branch opens at D + W), the stake alone goes into the game. The job is
        "slashed" only when the game's win is mined (GameDriver).
        """
        ctx = self._ctx
        testament, payment, params = client.testament, client.payment, record.params
        assert testament is not None and payment is not None  # a delivery is judged only after we paid
        terms = ctx.terms(params)
        staked = await self._stake_now(record, testament)
        engine = await ctx.engine_when_ready(params.model_id)
        player = await self._games.player(params.model_id)
        if staked is None or engine is None or player is None:
            log.warning("job %s: the stake or the model is gone; cannot dispute", hex_id(record.job_id))
            return
        if not player.judgeable:
            log.warning("job %s: the game's referee cannot judge model %s (its architecture): no dispute",
                        hex_id(record.job_id), params.model_id.hex()[:16])
            return
        prompt_tokens = await engine.tokenize(client.prompt)
        choice = await asyncio.to_thread(
            player.choose_token, prompt_tokens, tokens, position, params.seed, params.temperature_milli
        )
        end = set(player.header.end_tokens)
        structural = structural_failures(tokens, params.max_tokens, player.n_vocab, end.__contains__)
        if not structural and not choice.challengeable:
            log.warning("job %s: the reference pass scores position %d within EPS_SLASH (gap %.3f): no challenge",
                        hex_id(record.job_id), position, choice.gap)
            return
        proof = FraudProof(
            tuple(prompt_tokens), tuple(tokens), params.max_tokens, params.seed, params.temperature_milli, position,
            testament.signature, choice.token,
        )
        challenge = Challenge.of_proof(proof)
        give_up_at = terms.refund_time + RELEASE_PATIENCE
        await ctx.publish(payment, give_up_at)  # refused as already known when the node published it first
        payout_in = Spent(OutPoint(payment.hash, 0), payment.outputs[0])
        held = await ctx.holds(payout_in.outpoint, payout_in.out)
        wallets = ctx.require_wallets()
        wallet = wallets.get()
        bond_key = wallet.new_job_key()
        wallet.hold_job_key(bond_key, time.time() + KEY_HOLD)  # to sweep it back should no opening take it
        bond_value = max(payout_in.out.value if held else 0, MIN_GAME_BOND) + OPEN_FEE
        bond = await fund_coin(wallets, wallet, bond_key, bond_value)
        while staked is not None:
            lock = match_job_lock(staked.out.script_pubkey)
            assert lock is not None  # _stake_now finds only job locks
            game = Game.opened(lock, challenge.hash(), ctx.chain.params.n_move)
            for spent in [(staked, payout_in), (staked,)] if held else [(staked,)]:
                opening = terms.open_game(spent, bond.coin, bond_key, proof, game, OPEN_FEE, wallet)
                client.game = GamePlay(
                    Side.CHALLENGER, OutPoint(opening.hash, 0), opening.outputs[0], challenge.encode(), fees=[bond]
                )
                ctx.pool.on_change(record.job_id)  # the bond is journaled before anything can lose it
                if await ctx.publish(opening, give_up_at):
                    self._games.play(record.job_id)
                    log.info("job %s: challenged position %d (j* = %d, gap %.3f) by %s", hex_id(record.job_id),
                             position, choice.token, choice.gap, opening.txid())
                    return
            moved = await self._stake_now(record, testament)  # the delivery may have moved it meanwhile
            staked = moved if moved is not None and moved.outpoint != staked.outpoint else None
        if client.game is not None:  # no opening was taken: there is no game, and the bond goes back to the wallet
            client.game.outcome = GameOutcome.VOID
            ctx.pool.on_change(record.job_id)
            self._games.play(record.job_id)

    async def _stake_now(self, record: JobRecord, testament: TestamentRecord) -> Spent | None:
        """Where the node's stake is: the DELIVERED output of its delivery transaction once the pool saw one,
        else the STAKE output (waited for, as a testament can outrun it); None if neither is there."""
        ctx = self._ctx
        delivery_txid = record.delivery_txids.get(testament.node_pubkey)
        if delivery_txid is not None:
            delivered = await ctx.output_at(OutPoint(delivery_txid, 0))
            if delivered is not None:
                return Spent(OutPoint(delivery_txid, 0), delivered)
        stake = ctx.terms(record.params).stake_script(testament.node_pubkey, testament.commitment)
        found = await ctx.wait_for_output(testament.stake_txid, stake, 1)
        return None if found is None else Spent(OutPoint(testament.stake_txid, found[0]), TxOut(found[1], stake))

    async def _close_unfinished(self, job_id: bytes) -> None:
        """At the deadline D: dispute a paid job its node did not deliver. At the refund time: refund one never paid.

        Paid is what we decided (we signed a payment), whether or not it was published; delivered is a
        delivery from the paid node in the pool (by message or transaction). Consensus would admit the claim
        whenever no delivery was mined before D; we claim only when we hold none at all.
        """
        ctx = self._ctx
        client, record = self.jobs[job_id], ctx.pool.get(job_id)
        if record is None:  # a full pool dropped it: nothing left to settle it by
            return
        params = record.params
        await asyncio.sleep(max(0.0, params.timestamp + params.timelock - time.time()))
        testament = client.testament
        if client.payment is not None and testament is not None:
            if testament.node_pubkey not in record.deliveries:
                await self._claim_stake(record, client, testament, client.payment)
            return
        await asyncio.sleep(max(0.0, ctx.pool.refund_time(params) - time.time()))
        if client.payment is not None:  # paid in the last moments before the refund time
            return
        terms = ctx.terms(params)
        escrow = client.escrow_spent
        refund = TimedSpend(
            job_id, escrow, terms.refund_time, lambda pay_to, signer: terms.refund(escrow, pay_to, RELEASE_FEE, signer)
        )
        spent = await ctx.take_when_allowed(refund)
        if spent is not None:
            client.refund_txid = spent.txid()
            ctx.pool.advance(record, JobState.REFUNDED)
            log.info("job %s: never paid; escrow refunded by %s", hex_id(job_id), client.refund_txid)

    async def _claim_stake(
        self, record: JobRecord, client: ClientJob, testament: TestamentRecord, payment: Transaction
    ) -> None:
        """Take the STAKE and the PAYOUT of a node we paid that delivered nothing by D, through their claim branches.

        Consensus admits the claim from D unless the node's delivery transaction was mined before it (then
        the stake is spent, and we stop), and only with our payment mined before D - W (we published it
        when we paid).
        """
        ctx, params = self._ctx, record.params
        client.verdict = NOT_DELIVERED
        ctx.pool.advance(record, JobState.DISPUTED)
        log.warning("job %s: %s by node %s", hex_id(record.job_id), NOT_DELIVERED, testament.node.hex())
        terms = ctx.terms(params)
        stake = terms.stake_script(testament.node_pubkey, testament.commitment)
        found = await ctx.wait_for_output(testament.stake_txid, stake, 1)
        if found is None:
            log.warning("job %s: the stake %s is gone; nothing to claim", hex_id(record.job_id), testament.stake_txid)
            return
        staked = Spent(OutPoint(testament.stake_txid, found[0]), TxOut(found[1], stake))
        paid = Spent(OutPoint(payment.hash, 0), payment.outputs[0])
        claim = TimedSpend(
            record.job_id,
            staked,
            terms.deadline,
            lambda pay_to, signer: terms.claim(staked, paid, pay_to, RELEASE_FEE, signer),
        )
        spent = await ctx.take_when_allowed(claim)
        if spent is not None:
            client.slash_txid = spent.txid()
            ctx.pool.advance(record, JobState.SLASHED)
            log.info("job %s: claimed the stake for non-delivery by %s", hex_id(record.job_id), client.slash_txid)

