"""The compute side of a job (whitepaper 2.4, docs/jobs-design.md): what a serving node does for other nodes' jobs.

With --serve-model and a wallet, an idle node takes a job for a served model that its ComputePolicy allows
(t0 near its clock, timelock and stake within limits, a reward at its --min-price, the escrow here, unspent
and deep enough; a declined job is logged with the reason and counted by kind), the best-paying per token
first, broadcasts jobaccept, waits for the private prompt the client sends the accepter it chose
(camelid.node.jobs.prompts: none within PROMPT_WAIT, and it leaves the job), generates on the engine's own
thread, signs the commitment with a fresh wallet key Pn that the wallet holds usable until D + W, funds the STAKE
(STAKE_MULTIPLE x the reward) and broadcasts the testament. It takes a payment that moves that escrow to
the right PAYOUT with a valid signature and that its mempool would admit but for the dispute window
(nothing unminable, no conflicting spend of the escrow in its mempool or chain), publishes it, retrying
while the dispute window keeps it out of the mempool, and delivers the encrypted output once the payment
is as deep as the policy asks (retrying a delivery that fails), nothing if another spend of the escrow
wins; it then takes the STAKE (or what the delivery made of it) and the PAYOUT into the wallet once their
time locks open. A payment counts whether it comes directed or is published (mempool or block). The
delivery is a transaction: the STAKE moved, with the sealed output in its scriptSig, into the DELIVERED
lock, which has no claim branch; mined while the median time past is before D, it leaves the client's
non-delivery claim nothing to take. So the node delivers only while the median time past is a
delivery_margin before D, and also floods the signed jobdelivery, which reaches the client before any
block.
Regtest --misbehave=tamper-output commits to and delivers a tampered output (other cheats are played by
tests/functional/hostile_compute.py, on the wire). It knows the client side only through the pool and the
messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from camelid.chain.errors import TxRejected
from camelid.chain.jobpool import (
    TRANSITIONS,
    DeliveryRecord,
    JobRecord,
    JobState,
    TestamentRecord,
    job_accept_digest,
    job_delivery_digest,
)
from camelid.compute.worker_client import EngineUnavailable
from camelid.core.interpreter import verify_script
from camelid.core.job import job_tokens_problem
from camelid.core.jobgame import Challenge, Game
from camelid.core.jobscripts import (
    JOB_PAYOUT_FEE_CAP,
    commitment_body,
    commitment_signature_digest,
    match_job_lock,
    output_commitment,
)
from camelid.core.private_prompt import LengthUnit
from camelid.core.script import ScriptError
from camelid.core.sigchecker import TransactionSignatureChecker
from camelid.core.transaction import OutPoint, Transaction, TxOut
from camelid.crypto import ecies
from camelid.crypto.keys import PublicKey
from camelid.node.config import ComputePolicy, Misbehaviour
from camelid.node.jobs.claim_queue import ClaimQueue
from camelid.node.jobs.common import (
    DELIVERY_FEE,
    POLL,
    RELEASE_FEE,
    RELEASE_PATIENCE,
    SEEN_WAIT,
    STAKE_MULTIPLE,
    JobContext,
    TimedSpend,
    decode_directed,
    delivery_margin,
    delivery_message,
    hex_id,
    testament_message,
)
from camelid.node.jobs.contract import JobTerms, Spent
from camelid.node.jobs.game import GamePlay, Side
from camelid.node.jobs.prompts import PromptInbox
from camelid.node.jobs.scheduler import ESCROW_RECHECK, JobScheduler
from camelid.p2p.messages import JobAccept, JobPayment
from camelid.wallet.errors import WalletError

if TYPE_CHECKING:
    from camelid.p2p.messages import Directed
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)


class Decline(NamedTuple):
    """Why we will not take a job: `kind` (getcomputeinfo counts by it) and the detail the log shows."""

    kind: str  # "terms" (t0, timelock), "price", "stake", "escrow"
    reason: str


@dataclass
class ComputeJob:
    """A job this node computed: the output it holds back until paid."""

    output_tokens: list[int]
    prompt_tokens: list[int]  # as we tokenized the job's prompt: the delivery seals them with the output
    prompt: str  # the private prompt its client sent us (never flooded; getjob shows it here and on the client)
    node_pubkey: bytes
    commitment: bytes
    escrow: OutPoint
    escrow_script: bytes
    reward: int
    stake: OutPoint
    stake_out: TxOut
    payment_txid: str | None = None  # the payment we delivered for
    payment: Transaction | None = None
    released: list[OutPoint] = field(default_factory=list)  # our STAKE (or DELIVERED) and PAYOUT, once back
    delivery: Transaction | None = None  # the STAKE moved into its DELIVERED lock with our sealed output
    game: GamePlay | None = None  # the dispute game a client opened on our stake

    @property
    def delivered_out(self) -> OutPoint | None:
        """Where our stake sits once delivered: output 0 of the delivery transaction."""
        return None if self.delivery is None else OutPoint(self.delivery.hash, 0)

    @property
    def stake_back(self) -> bool:
        """Whether the stake is back in the wallet, through the reclaim or the DELIVERED release."""
        return self.stake in self.released or (self.delivered_out is not None and self.delivered_out in self.released)


class JobComputer:
    """This node's compute work (`jobs`, by Job ID): one job at a time, from accept to release."""

    def __init__(
        self, ctx: JobContext, serving: bool, misbehave: Misbehaviour | None, policy: ComputePolicy
    ) -> None:
        """`serving`: take jobs for the models the store holds; `misbehave` (regtest only): cheat on purpose;
        `policy`: the jobs we take and the payments we deliver for."""
        self._ctx = ctx
        self.policy = policy
        self._serving = serving
        self._misbehave = misbehave
        self._scheduler = JobScheduler(
            ctx.node_id,
            lambda model_id: ctx.models.store.get(model_id) is not None and ctx.compute.usable(model_id),
        )
        self._queue = ClaimQueue(self._scheduler)  # the jobs we may yet take: a look never walks the pool
        self._offered = asyncio.Event()  # set by offer: a job came in that the idle _work loop should look at
        self._slots = asyncio.Semaphore(ctx.compute.settings.slots)  # jobs computed at once
        self.prompts = PromptInbox(ctx)  # the private prompts clients send us for the jobs we accept
        self._reserved = 0  # stakes of the jobs being computed now, not staked yet
        self._escrows_seen: set[bytes] = set()  # escrow txids once found (then only confirmations are awaited)
        self._rewards: dict[bytes, int] = {}  # open jobs' escrow values, by Job ID, once located
        self.jobs: dict[bytes, ComputeJob] = {}
        self.declined: Counter[str] = Counter()  # since start, by Decline.kind
        self.taken = 0  # jobs staked on since start
        self.tokens_computed = 0  # output tokens of those jobs
        self.earned = 0  # base units of the PAYOUTs of payments taken since start

    def policy_info(self) -> dict[str, Any]:
        """The policy, and the stake locked in our open jobs now (base units)."""
        return {**self.policy.to_json(), "staked": self.staked()}

    def selling(self) -> tuple[ComputePolicy, tuple[bytes, ...]] | None:
        """(our policy, the models we take jobs for) if this node sells compute, else None: what we announce."""
        if not self._serving:
            return None
        ctx = self._ctx
        return self.policy, tuple(m for m in ctx.models.announced() if ctx.compute.usable(m))

    def stats(self) -> dict[str, Any]:
        """For getcomputeinfo: since start, jobs taken and declined by kind, tokens, earnings; stake locked now."""
        return {
            "taken": self.taken,
            "declined": dict(self.declined),
            "tokens_computed": self.tokens_computed,
            "earned": self.earned,
            "staked": self.staked(),
        }

    def staked(self) -> int:
        """Base units in STAKEs of ours not yet taken back, of jobs whose stakes are still in play, and
        reserved for the jobs being computed now."""
        now, pool = time.time(), self._ctx.pool
        total = self._reserved
        for job_id, work in self.jobs.items():
            record = pool.get(job_id)
            in_play = record is not None and now < self._ctx.terms(record.params).refund_time + RELEASE_PATIENCE
            total += work.stake_out.value if in_play and not work.stake_back else 0
        return total

    def start(self) -> None:
        """Take jobs from now on, if this node sells compute (its models' workers passed their self-check)."""
        if self._serving:
            for record in self._ctx.pool.open_jobs():  # those restored from the journal, or heard before now
                self._queue.add(record, time.time())
            self._ctx.spawn(self._work(), "job-work")

    def offer(self, record: JobRecord) -> None:
        """A new valid job reached the pool: queue it and wake the _work loop if it is idle (a busy one looks
        when free)."""
        if self._serving:
            self._queue.add(record, time.time())
            self._offered.set()

    def dropped(self, job_id: bytes) -> None:
        """The pool dropped a job (evicted or aged out): it leaves the claim queue."""
        self._queue.discard(job_id)

    def on_testament(self, job_id: bytes, testament: TestamentRecord) -> None:
        """Another node's valid testament: it closes the job to us only if its stake shows. A testament
        costs nothing to sign under a fresh node key, its stake does; one whose stake never shows (within
        SEEN_WAIT) leaves the job open again, so a free testament cannot take a job from every node."""
        if self._serving and testament.node != self._ctx.node_id:
            self._ctx.spawn(self._check_stake(job_id, testament), f"job-stake-{hex_id(job_id)[:16]}")

    async def _check_stake(self, job_id: bytes, testament: TestamentRecord) -> None:
        record = self._ctx.pool.get(job_id)
        if record is None:
            return
        terms = self._ctx.terms(record.params)
        escrow = await self._ctx.locate(record.escrow_txid, terms.escrow_script)
        least = escrow.value * STAKE_MULTIPLE if escrow is not None else 1
        stake = terms.stake_script(testament.node_pubkey, testament.commitment)
        if await self._ctx.wait_for_output(testament.stake_txid, stake, least) is not None:
            self._scheduler.backed.add(job_id)  # taken for good: the claim queue lets it go
            return
        log.info("job %s: node %s's testament has no stake behind it; ignored", hex_id(job_id), testament.node.hex())
        self._scheduler.unbacked.add((job_id, testament.node))
        self._offered.set()

    def on_block(self) -> None:
        """A block connected: an escrow waiting for confirmations may have them now, and a model may be served
        that was not. Also the time to keep what we remember of jobs as bounded as the pool (once a block,
        not once a look)."""
        jobs = self._ctx.pool.jobs()
        self._scheduler.forget(job.job_id for job in jobs)
        self.prompts.forget({job.job_id for job in jobs})
        self._escrows_seen &= {job.escrow_txid for job in jobs}
        self._rewards = {job.job_id: self._rewards[job.job_id] for job in jobs if job.job_id in self._rewards}
        self._queue.take_back(block=True)
        self._offered.set()

    async def _work(self) -> None:
        """For the node's life: take open jobs, as many at once as the workers have slots (--compute-slots,
        one by default); when none is open, sleep until a job is offered or another node's claim on one
        runs out. A node with no free slot so accepts nothing new, and takes the jobs offered meanwhile
        once a slot is free. Jobs computed at once are generated batched in the model's worker."""
        while True:
            await self._slots.acquire()  # a free slot before looking: a busy node claims nothing
            self._offered.clear()  # before looking: a job or escrow arriving during the look wakes the wait below
            record = await self._next_claim()
            if record is not None:
                self._ctx.spawn(self._compute_in_slot(record), f"job-compute-{hex_id(record.job_id)[:16]}")
                continue
            self._slots.release()
            now = time.time()
            # A late escrow is looked for again soon; a few ms late for a claim running out is no harm.
            if self._queue.waiting_for_tx():
                wake_at: float | None = now + ESCROW_RECHECK
            else:
                wake_at = self._scheduler.next_reopening(self._queue.jobs(), now)
            timeout = None if wake_at is None else wake_at - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._offered.wait(), timeout)
            self._queue.take_back(block=False)  # a transaction or the recheck time came: look for escrows again

    async def _compute_in_slot(self, record: JobRecord) -> None:
        """Compute `record` in the slot `_work` acquired for it; the slot is free again once generation is done
        (the contest window and the stake need none), so short jobs' contest windows overlap."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._slots.release()
                self._offered.set()  # a slot is free: look at the open jobs again

        try:
            await self._compute(record, release)
        finally:
            release()

    async def _next_claim(self) -> JobRecord | None:
        """The open job this node claims now, after its claim delay, or None.

        Only a job our policy allows and whose escrow is already here, as deep as the policy asks and
        not spent, is claimed, so that the jobaccept follows the claim at once and other nodes see the
        claim as early as they can. A job whose escrow has not shown SEEN_WAIT after the job did (or
        has not confirmed by half its deadline) is given up; a job outside the policy is declined; one
        whose escrow is not here yet, or not deep enough, is set aside until a transaction or a block.
        """
        while (choice := self._queue.choose(time.time(), self._pay_rate)) is not None:
            reward_known = choice.job_id in self._rewards
            problem = self._terms_problem(choice)
            if problem is None:
                ready, problem = await self._escrow_ready(choice)
                if not ready and problem is None:
                    self._queue.set_aside(choice, until_block=choice.escrow_txid in self._escrows_seen)
                    continue
                if ready and not reward_known:  # its reward is known now: choose again, best-paying first
                    continue
            if problem is not None:
                self._decline(choice, problem)
                continue
            await asyncio.sleep(self._scheduler.claim_delay(choice.job_id, self._queue.jobs()))
            if self._scheduler.is_open(choice, time.time()):  # nobody's jobaccept came in while we waited
                return choice
        return None

    def _pay_rate(self, record: JobRecord) -> float:
        """The scheduler's order: reward per max_tokens token; a job whose escrow we have not located yet
        comes first, so that every candidate's reward is known before we choose among them."""
        reward = self._rewards.get(record.job_id)
        return math.inf if reward is None else reward / record.params.max_tokens

    def _decline(self, record: JobRecord, problem: Decline) -> None:
        self._scheduler.tried.add(record.job_id)
        self.declined[problem.kind] += 1
        log.info("job %s declined: %s (%s)", hex_id(record.job_id), problem.reason, problem.kind)

    def _terms_problem(self, record: JobRecord) -> Decline | None:
        """Why the policy refuses the job's times (None if it does not): t0 is judged against our clock
        when the job reached us, so a client cannot backdate it to shorten the dispute window."""
        params, policy = record.params, self.policy
        arrived = record.history[0][1]  # when the job reached our pool (its CREATED entry)
        when = f"it reached us at {arrived:.0f}"
        if params.timestamp < arrived - policy.max_job_age:
            return Decline(
                "terms", f"its t0 {params.timestamp} is more than {policy.max_job_age} s in the past ({when})"
            )
        if params.timestamp > arrived + policy.max_clock_ahead:
            return Decline(
                "terms", f"its t0 {params.timestamp} is more than {policy.max_clock_ahead} s in the future ({when})"
            )
        if params.timelock > policy.max_timelock:
            return Decline(
                "terms", f"its timelock {params.timelock} s is longer than our limit of {policy.max_timelock} s"
            )
        shortest = 2 * self._ctx.chain.params.dispute_window
        if params.timelock < shortest:
            return Decline(
                "terms", f"its timelock {params.timelock} s is shorter than two dispute windows ({shortest} s): "
                "its payment waits one out, and the delivery must be mined before the deadline"
            )
        return None

    async def _escrow_ready(self, record: JobRecord) -> tuple[bool, Decline | None]:
        """(whether we may take the job now, why we never will): the escrow must be here, unspent, as deep
        as the policy asks, and its value (the reward) at our price and (our stake) within our stake limits."""
        escrow = await self._ctx.locate(record.escrow_txid, self._ctx.terms(record.params).escrow_script)
        now, arrived = time.time(), record.history[0][1]
        if escrow is None:
            return False, None if now < arrived + SEEN_WAIT else Decline("escrow", "its escrow never showed")
        self._escrows_seen.add(record.escrow_txid)
        self._rewards[record.job_id] = escrow.value
        if escrow.spent_by is not None:
            return False, Decline("escrow", f"its escrow is already spent by {hex_id(escrow.spent_by)}")
        stake, policy = escrow.value * STAKE_MULTIPLE, self.policy
        price_problem = policy.price_problem(record.params.model_id, record.params.max_tokens, escrow.value)
        if price_problem is not None:
            return False, Decline("price", price_problem)
        if stake > policy.max_stake:
            return False, Decline("stake", f"its stake {stake} is above our per-job limit {policy.max_stake}")
        if self.staked() + stake > policy.max_total_stake:
            return False, Decline(
                "stake", f"its stake {stake} would take our staked total above {policy.max_total_stake}"
            )
        if escrow.confirmations < policy.escrow_confirmations:
            half_time = record.params.timestamp + record.params.timelock / 2
            late = Decline("escrow", f"its escrow has {escrow.confirmations} confirmations")
            return False, None if now < half_time else late
        return True, None

    async def _compute(self, record: JobRecord, generated: Callable[[], None]) -> None:
        """Compute one claimed job; a failure is logged and ends only that job, never the node's job-taking."""
        self._scheduler.claim(record)
        try:
            await self._compute_and_stake(record, generated)
        except EngineUnavailable as exc:  # nothing staked yet: the job is given up, another node or a refund ends it
            log.warning("job %s: given up, the llama.cpp worker is unavailable: %s", hex_id(record.job_id), exc)
        except Exception:
            log.exception("job %s: computing it failed", hex_id(record.job_id))

    async def _compute_and_stake(self, record: JobRecord, generated: Callable[[], None]) -> None:
        ctx, job_id = self._ctx, record.job_id
        escrow = ctx.terms(record.params).escrow_script
        found = await ctx.wait_for_output(record.escrow_txid, escrow, 1)
        if found is None:
            log.info("job %s: escrow %s not seen; not taking it", hex_id(job_id), hex_id(record.escrow_txid))
            return
        escrow_index, reward = found
        stake_value = reward * STAKE_MULTIPLE
        if self.staked() + stake_value > self.policy.max_total_stake:  # jobs computed at once count too
            log.info("job %s: not taking it: its stake would take our staked total above our limit", hex_id(job_id))
            return
        self._reserved += stake_value
        try:
            await self._compute_and_stake_reserved(record, escrow_index, reward, generated)
        finally:
            self._reserved -= stake_value

    async def _compute_and_stake_reserved(
        self, record: JobRecord, escrow_index: int, reward: int, generated: Callable[[], None]
    ) -> None:
        ctx = self._ctx
        params, job_id, terms = record.params, record.job_id, ctx.terms(record.params)
        escrow = terms.escrow_script
        engine = await ctx.engine_for(params.model_id)
        assert engine is not None  # the scheduler claims only jobs for models the store holds
        # The jobaccept goes out at once, before any call to the worker (busy with another job's generation, it
        # could hold the accept back, and with it the client's prompt); the token count is checked next.
        accept = JobAccept(job_id, ctx.node_id, ctx.node_key.sign(job_accept_digest(job_id, ctx.node_id)))
        ctx.pool.add_accept(accept.job_id, accept.node, accept.signature)
        expected = self.prompts.expect(job_id)  # before the accept goes out: the client answers it at once
        ctx.manager.broadcast(accept)
        ctx.manager.send_directed(record.client_node, JobAccept.command, accept.to_payload())  # past full pools
        revealed = await self.prompts.receive(job_id, expected)  # the client chose us; None: we stake nothing
        if revealed is None:
            if job_id not in self.prompts.problems:  # no prompt yet: the client may choose us once its choice lapses
                self._scheduler.tried.discard(job_id)
                self._queue.add(record, time.time())
            return
        prompt_tokens = await engine.tokenize(revealed.prompt)
        if params.prompt_unit == LengthUnit.TOKENS and len(prompt_tokens) != params.prompt_length:
            self.prompts.refuse(job_id, f"the revealed prompt is {len(prompt_tokens)} tokens, the job declared "
                                f"{params.prompt_length}")
            return
        too_long = job_tokens_problem(len(prompt_tokens), params.max_tokens)
        if too_long is not None:  # its delivery could not go on chain: no node can take it, our accept holds nobody
            self._decline(record, Decline("terms", too_long))
            return
        output = await engine.generate(prompt_tokens, params.max_tokens, params.seed, params.temperature)
        if self._misbehave is Misbehaviour.TAMPER_OUTPUT:
            output = await engine.tamper(prompt_tokens, output)
            log.warning("job %s: --misbehave=tamper-output: delivering a tampered output", hex_id(job_id))
        generated()  # the reserved stake, not the slot, bounds what we take on while we stake
        commitment = output_commitment(
            params.model_id, prompt_tokens, output, params.max_tokens, params.seed, params.temperature
        )
        still = await ctx.locate(record.escrow_txid, escrow)
        if still is None or still.spent_by is not None:
            log.info("job %s: its escrow was spent while we computed; not staking", hex_id(job_id))
            return
        wallets = ctx.require_wallets()
        wallet = wallets.get()
        node_pubkey = wallet.new_job_key()
        # Pn signs the delivery and takes back the STAKE and PAYOUT until D + W and after: a wallet that
        # relocks before then would cost us the stake, so we hold the key, or (locked now) do not stake.
        try:
            wallet.hold_job_key(node_pubkey, terms.refund_time + RELEASE_PATIENCE)
        except WalletError as exc:
            log.warning("job %s: not staking: the wallet cannot sign for this job until D + W (%s)", hex_id(job_id),
                        exc.message)
            return
        signature = wallet.sign_job_digest(node_pubkey, commitment_signature_digest(commitment))
        stake = terms.stake_script(node_pubkey, commitment)
        created = await wallets.pay(
            wallet, lambda: wallet.create_script_payment(stake, reward * STAKE_MULTIPLE, job_id)
        )
        stake_index = next(i for i, out in enumerate(created.tx.outputs) if out.script_pubkey == stake)
        work = self.jobs[job_id] = ComputeJob(
            output,
            prompt_tokens,
            revealed.prompt,
            node_pubkey,
            commitment,
            OutPoint(record.escrow_txid, escrow_index),
            escrow,
            reward,
            OutPoint(created.tx.hash, stake_index),
            created.tx.outputs[stake_index],
        )
        self._release(job_id, work, work.stake, work.stake_out)
        testament = TestamentRecord(ctx.node_id, node_pubkey, commitment, signature, created.tx.hash)
        testament = replace(testament, node_signature=ctx.node_key.sign(testament.digest(job_id)))
        ctx.pool.add_testament(job_id, testament)
        ctx.manager.broadcast(testament_message(job_id, testament))
        self.taken += 1
        self.tokens_computed += len(output)
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
        await self._take_payment(message.job_id, tx, published=False)

    def on_published(self, tx: Transaction) -> None:
        """A transaction reached the mempool or a block: a job's escrow, or a payment for a job of ours."""
        record = self._ctx.pool.get(tx.job_id)
        if record is not None and record.escrow_txid == tx.hash:
            self._offered.set()  # a job waiting for this escrow can be claimed now, not at the next ESCROW_RECHECK
        lock = match_job_lock(tx.outputs[0].script_pubkey) if tx.outputs else None
        if lock is not None and lock.is_payout and lock.job_id in self.jobs:  # any payment: a client's claim needs one
            self._ctx.spawn(self._take_payment(lock.job_id, tx, published=True), f"job-paid-{tx.txid()[:16]}")

    async def _take_payment(self, job_id: bytes, tx: Transaction, published: bool) -> None:
        """Take a payment we can rely on (once per job), publish it if it is not yet, deliver once it is safe
        to (deliver_when_paid), and claim the PAYOUT later.

        A directed payment must pass payment_problem and every mempool rule but the dispute window,
        against our mempool and chain: a payment that can never be mined, or whose escrow the client
        already spent elsewhere, earns nothing (mempool.check).
        """
        ctx = self._ctx
        work = self.jobs[job_id]
        record = ctx.pool.get(job_id)
        if record is None or work.payment_txid is not None:
            return
        terms = ctx.terms(record.params)
        problem = payment_problem(tx, terms, work)
        if problem is None and not published:
            try:
                await ctx.chain.call(ctx.chain.mempool.check, tx)
            except TxRejected as exc:
                problem = f"the mempool would refuse it: {exc}"
        if problem is not None:
            log.warning("job %s: refusing payment %s: %s", hex_id(job_id), tx.txid(), problem)
            return
        if work.payment_txid is not None:  # another payment was taken while we checked this one
            return
        work.payment_txid, work.payment = tx.txid(), tx
        self.earned += tx.outputs[0].value
        ctx.pool.record_payment(tx, published)
        if not published:
            ctx.spawn(ctx.publish(tx, terms.refund_time), f"job-publish-{tx.txid()[:16]}")
        ctx.spawn(self._deliver_when_paid(record, work, tx), f"job-deliver-{hex_id(job_id)[:16]}")
        self._release(job_id, work, OutPoint(tx.hash, 0), tx.outputs[0])

    def join_game(self, tx: Transaction, game: Game, challenge: Challenge) -> GamePlay | None:
        """Move 0 against us: `tx` took our STAKE (or DELIVERED) into a GAME naming our key. We play it as the
        accused (GameDriver); a GAME output anyone can make with our key, not spending our stake, is ignored."""
        work = self.jobs.get(tx.job_id)
        record = self._ctx.pool.get(tx.job_id)
        if work is None or record is None or work.game is not None or game.node_pubkey != work.node_pubkey:
            return None
        prevouts = {txin.prevout for txin in tx.inputs}
        if work.stake not in prevouts and work.delivered_out not in prevouts:
            return None
        work.game = GamePlay(Side.ACCUSED, OutPoint(tx.hash, 0), tx.outputs[0], challenge.encode())
        if JobState.DISPUTED in TRANSITIONS[record.state]:
            self._ctx.pool.advance(record, JobState.DISPUTED)
        log.warning("job %s: challenged at output position %d by %s", hex_id(tx.job_id), challenge.position, tx.txid())
        return work.game

    def resume(self, job_id: bytes) -> None:
        """After a restart: deliver for a payment taken but not yet delivered, and watch our time locks again."""
        work, record = self.jobs[job_id], self._ctx.pool.get(job_id)
        if record is None:
            return
        if work.payment is not None and work.delivery is None and work.node_pubkey not in record.deliveries:
            self._ctx.spawn(self._deliver_when_paid(record, work, work.payment), f"job-deliver-{hex_id(job_id)[:16]}")
        if work.delivery is not None and not work.stake_back:  # the mempool is not kept over a restart
            terms = self._ctx.terms(record.params)
            publish = self._ctx.publish(work.delivery, terms.refund_time)
            self._ctx.spawn(publish, f"job-publish-{work.delivery.txid()[:16]}")
            self._release(job_id, work, OutPoint(work.delivery.hash, 0), work.delivery.outputs[0])
        if not work.stake_back:
            self._release(job_id, work, work.stake, work.stake_out)
        if work.payment is not None and OutPoint(work.payment.hash, 0) not in work.released:
            self._release(job_id, work, OutPoint(work.payment.hash, 0), work.payment.outputs[0])

    async def _deliver_when_paid(self, record: JobRecord, work: ComputeJob, payment: Transaction) -> None:
        """Deliver once the payment cannot be undone, retrying a delivery that fails (a locked wallet).

        With policy.payment_confirmations > 0 we wait for that many blocks over the payment, since a
        client can race a payment it sent us with another spend of the escrow that its own miner
        mines; once the escrow is spent by anything else, we deliver nothing. We stop waiting a
        delivery_margin before the last moment we may start a delivery (D less that margin, in median
        time past): from then on holding back would risk the stake. Past that moment we deliver nothing:
        the delivery might not be mined before D, and the output would be the client's along with the
        stake.
        """
        ctx, job_id = self._ctx, record.job_id
        terms = ctx.terms(record.params)
        if not await self._paid_for_good(record, work, payment, terms):
            log.warning("job %s: payment %s lost to another spend of the escrow; delivering nothing", hex_id(job_id),
                        payment.txid())
            work.payment_txid, work.payment = None, None
            ctx.pool.on_change(job_id)
            return
        deliver_by = terms.deliver_by(delivery_margin(terms.dispute_window))
        while time.time() < terms.refund_time + RELEASE_PATIENCE:
            median_time_past = await ctx.chain.call(ctx.median_time_past)
            if median_time_past >= deliver_by:
                log.error("job %s: paid by %s too late to deliver on chain before the deadline %d (median time past "
                          "%d); not delivering", hex_id(job_id), payment.txid(), terms.deadline, median_time_past)
                return
            try:
                delivered = await self._deliver(record, work, terms)
            except WalletError as exc:
                log.warning("job %s: delivery failed (%s); retrying", hex_id(job_id), exc.message)
                await asyncio.sleep(1.0)
                continue
            if delivered:
                log.info("job %s: paid by %s, output delivered", hex_id(job_id), payment.txid())
            return
        log.error("job %s: gave up delivering for payment %s", hex_id(job_id), payment.txid())

    async def _paid_for_good(self, record: JobRecord, work: ComputeJob, payment: Transaction, terms: JobTerms) -> bool:
        """True once `payment` has the policy's confirmations (or the claim guard time came with it still
        standing); False once something else spent the escrow, or the job's refund time and
        RELEASE_PATIENCE passed without either."""
        ctx, wanted = self._ctx, self.policy.payment_confirmations
        while time.time() < terms.refund_time + RELEASE_PATIENCE:
            depth = await ctx.chain.call(ctx.confirmations, payment.hash)
            if depth >= wanted:
                return True
            pooled = await ctx.chain.call(ctx.chain.mempool.get, payment.hash)
            escrow = await ctx.locate(work.escrow.txid, work.escrow_script)
            if pooled is None and (escrow is None or escrow.spent_by is not None) and depth == 0:
                return False  # the escrow is gone, and not to our payment
            margin = delivery_margin(terms.dispute_window)
            if await ctx.chain.call(ctx.median_time_past) >= terms.deliver_by(margin) - margin:
                return pooled is not None
            await asyncio.sleep(POLL)
        return False

    async def _deliver(self, record: JobRecord, work: ComputeJob, terms: JobTerms) -> bool:
        """Put our output, encrypted to the client, on chain: the STAKE moved into its DELIVERED lock with the
        sealed output, the proof that we delivered. Once our mempool took it, the same blob is flooded as a
        signed jobdelivery, which reaches the client before a block does; a delivery the mempool refuses (it
        would not be mined before D) is not sent at all."""
        ctx = self._ctx
        wallet = ctx.require_wallets().get()
        params = record.params
        plain = commitment_body(  # B: the client checks it against C without the model, and so can anyone
            params.model_id, work.prompt_tokens, work.output_tokens, params.max_tokens, params.seed, params.temperature
        )
        sealed = ecies.encrypt(PublicKey.from_bytes(record.params.client_pubkey), plain, aad=record.job_id)
        staked = Spent(work.stake, work.stake_out)
        tx = terms.delivery(staked, terms.stake_lock(work.node_pubkey, work.commitment), sealed, DELIVERY_FEE, wallet)
        digest = job_delivery_digest(record.job_id, ctx.node_id, work.stake.txid, sealed)
        signature = wallet.sign_job_digest(work.node_pubkey, digest)
        delivery = DeliveryRecord(
            ctx.node_id, work.node_pubkey, sealed, signature, work.stake.txid, ctx.node_key.sign(digest)
        )
        work.delivery = tx
        ctx.pool.on_change(record.job_id)  # the journal keeps it: a restarted node submits it again
        if not await ctx.publish(tx, terms.refund_time):
            log.error("job %s: our delivery %s was refused; not delivering", hex_id(record.job_id), tx.txid())
            return False
        ctx.pool.add_delivery(record.job_id, delivery)
        ctx.manager.broadcast(delivery_message(record.job_id, delivery))
        self._release(record.job_id, work, OutPoint(tx.hash, 0), tx.outputs[0])
        return True

    def _release(self, job_id: bytes, work: ComputeJob, outpoint: OutPoint, locked: TxOut) -> None:
        """Take our STAKE or PAYOUT into the wallet through its time-locked branch once the chain allows it.

        Before release_time nobody else can spend it but the client (a fraud proof, or on a STAKE the
        non-delivery claim from D) and, on a STAKE, our own delivery; then we stop.
        """
        lock = match_job_lock(locked.script_pubkey)
        record = self._ctx.pool.get(job_id)
        assert lock is not None and record is not None  # our own STAKE, or a PAYOUT payment_problem checked
        terms, ours = self._ctx.terms(record.params), Spent(outpoint, locked)
        spend = TimedSpend(
            job_id,
            ours,
            lock.release_time,
            lambda pay_to, signer: terms.release(ours, lock, pay_to, RELEASE_FEE, signer),
        )

        async def release() -> None:
            if await self._ctx.take_when_allowed(spend) is not None:
                work.released.append(outpoint)
                self._ctx.pool.on_change(job_id)  # the journal keeps it: a restart does not try again

        self._ctx.spawn(release(), f"job-release-{hex_id(outpoint.txid)[:16]}")


def payment_problem(tx: Transaction, terms: JobTerms, work: ComputeJob) -> str | None:
    """Why `tx` is not a payment we can rely on (None if it is): its output 0 must be our PAYOUT, worth the reward.

    It need not spend the job's escrow: the client's claim on our stake needs any PAYOUT of ours mined
    before D - W (jobrules.check_job_claims), so we deliver on whichever one comes; one that spends the
    escrow must carry the client's signature of it.

    The PAYOUT must be exactly the job's (terms.payout_lock): claimable with our stake from D, ours
    from D + W as the stake is; a client could otherwise pay with a lock that keeps the reward from us
    for years, or one it could claim back although we delivered.
    """
    lock = match_job_lock(tx.outputs[0].script_pubkey) if tx.outputs else None
    if lock is None or lock != terms.payout_lock(work.node_pubkey, work.commitment):
        return "its output 0 is not the job's PAYOUT to our key for our commitment"
    if tx.outputs[0].value < work.reward - JOB_PAYOUT_FEE_CAP:
        return f"it pays {tx.outputs[0].value}, less than the escrow's {work.reward} minus the fee cap"
    spends = [i for i, txin in enumerate(tx.inputs) if OutPoint(txin.prev_txid, txin.prev_index) == work.escrow]
    if not spends:
        return None  # the mempool check (directed) or the chain (published) judged its inputs
    if tx.job_id != terms.job_id:
        return "it spends the escrow and carries another Job ID"
    index = spends[0]
    try:
        verify_script(
            tx.inputs[index].script_sig, work.escrow_script, TransactionSignatureChecker(tx, index, work.reward)
        )
    except ScriptError as exc:
        return f"its escrow signature does not verify ({exc})"
    return None
