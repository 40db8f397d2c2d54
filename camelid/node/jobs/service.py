"""The job service every node runs (whitepaper 2.4, docs/jobs-design.md): the pool, its relay, and the RPC face.

Every node tracks the flooded job messages in its JobPool and relays the new, valid ones; this module owns
that and hands each role what concerns it: new jobs to the compute side (JobComputer), testaments and
deliveries to the client side (JobClient), payments (directed, or seen in the mempool and blocks) to the
compute side. It also makes the pool the mempool's judge of non-delivery claims on stakes, and records
in it every payment the mempool or a block shows. The RPC methods (submitjob,
getjob, listjobs, canceljob) call in here, and read both roles' records to describe a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camelid.chain.jobpool import TRANSITIONS, JobPool, JobRecord, JobState
from camelid.chain.jobstore import JobStore
from camelid.chain.storage import LevelDBStore
from camelid.core.fill import Fills
from camelid.node.config import ComputePolicy, Misbehaviour
from camelid.node.events import BlockConnected, BlockDisconnected, JobChanged, TxAccepted
from camelid.node.jobs.client import DEFAULT_TIMELOCK, JobClient
from camelid.node.jobs.common import (
    JobContext,
    delivery_message,
    delivery_record,
    hex_id,
    testament_message,
    testament_record,
)
from camelid.node.jobs.compute import JobComputer
from camelid.node.jobs.game import GameDriver, GamePlay
from camelid.node.jobs.game import Outcome as GameOutcome
from camelid.node.jobs.intake import JobIntake, checked
from camelid.node.jobs.journal import JobJournal
from camelid.node.jobs.market import Market, take_by, untaken
from camelid.node.jobs.verify import OutsourcedVerification
from camelid.p2p.messages import (
    Inv,
    InvItem,
    InvType,
    JobAccept,
    JobDelivery,
    JobMessage,
    JobPayment,
    JobPrompt,
    JobTestament,
    Prices,
    RasticAnswer,
    RasticAsk,
)
from camelid.p2p.schema import Message

if TYPE_CHECKING:
    from camelid.core.jobgame import Challenge, Game
    from camelid.core.transaction import Transaction
    from camelid.node.bus import EventBus
    from camelid.node.chain_service import ChainService
    from camelid.node.compute_service import ComputeService
    from camelid.node.model_service import ModelService
    from camelid.node.p2p_service import P2PService
    from camelid.node.wallet_service import WalletService
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 60.0
MAX_CATCH_UP_BYTES = 4 << 20
"""Payload bytes of job messages a new peer is sent at most (the newest jobs first): a quarter of a peer's send
buffer, so a catch-up never gets the new peer dropped for a full buffer."""


class JobService:
    """Owns the job pool and this node's client and compute roles; `await run()` in the node's TaskGroup."""

    def __init__(
        self,
        chain: ChainService,
        bus: EventBus,
        p2p: P2PService,
        models: ModelService,
        wallets: WalletService | None,
        compute: ComputeService,
        serve: bool,
        misbehave: Misbehaviour | None = None,
        store_dir: Path | None = None,
        policy: ComputePolicy | None = None,
        verifiers: int = 2,
    ) -> None:
        """`serve`: act as a compute node for the models the store holds (needs `wallets`).

        `store_dir`: the LevelDB directory the job journal keeps jobs in across restarts (None: memory only).

        `misbehave` (regtest only): cheat on purpose as a compute node or a client, to test disputes.

        `policy`: what the compute role accepts (default: ComputePolicy's safe defaults).

        `verifiers`: how many independent verifiers must pass a delivery of a model we do not hold.
        """
        self.chain = chain
        self.pool = JobPool(chain.params.dispute_window)
        self._bus = bus
        self._manager = p2p.manager
        self._ctx = JobContext(chain, self.pool, p2p.manager, p2p.node_key, models, wallets, compute)
        verifiers = OutsourcedVerification(self._ctx, verifiers)
        self._games = GameDriver(self._ctx, self._play_of, self._join_game, self._game_ended)
        self._client = JobClient(self._ctx, verifiers, self._games, misbehave)
        self._compute = JobComputer(
            self._ctx, serving=serve and wallets is not None, misbehave=misbehave, policy=policy or ComputePolicy()
        )
        self.market = Market(p2p.manager, self._ctx.node_id, self._compute.selling)
        self._journal: JobJournal | None = None
        self._restored: list[bytes] = []
        if store_dir is not None:
            self._journal = JobJournal(
                JobStore(LevelDBStore(store_dir)), self.pool, self._client.jobs, self._compute.jobs
            )
            self._restored = self._journal.restore()
        self.pool.on_change = self._changed
        self.pool.pinned = lambda job_id: job_id in self._client.jobs or job_id in self._compute.jobs
        self._intake = JobIntake(
            self.pool, chain.params.dispute_window, self._escrow_seen, self._admitted, catching_up=p2p.sync.catching_up
        )
        self._manager.add_ready_listener(self._bring_up_to_date)
        self._manager.add_ready_listener(self.market.announce)
        self._manager.add_gone_listener(self.market.forget)
        self._manager.register_handler(Prices.command, self.market.on_prices)
        for command, handler in (
            (JobMessage.command, self._on_job),
            (JobAccept.command, self._on_accept),
            (JobTestament.command, self._on_testament),
            (JobDelivery.command, self._on_delivery),
        ):
            self._manager.register_handler(command, handler)
        self._manager.register_directed_handler(JobPayment.command, self._compute.on_payment)
        self._manager.register_directed_handler(JobPrompt.command, self._compute.prompts.on_prompt)
        self._manager.register_directed_handler(JobAccept.command, self._client.on_directed_accept)
        self._manager.register_directed_handler(RasticAsk.command, verifiers.on_ask)
        self._manager.register_directed_handler(RasticAnswer.command, verifiers.on_verdict)
        bus.subscribe(BlockConnected, self._on_block_connected)
        bus.subscribe(TxAccepted, self._on_tx_accepted)
        bus.subscribe(BlockDisconnected, self._on_block_disconnected)

    async def run(self) -> None:
        for job_id in self._restored:  # before any peer's catch-up can race the roles' own resumption
            if job_id in self._client.jobs:
                self._client.resume(job_id)
            if job_id in self._compute.jobs:
                self._compute.resume(job_id)
            play = self._play_of(job_id)
            if play is not None and (play.outcome is None or play.fees):
                self._games.play(job_id)
        self._compute.start()
        try:
            while True:
                await asyncio.sleep(PRUNE_INTERVAL)
                self.pool.prune()
        finally:
            await self._ctx.close()
            if self._journal is not None:
                self._journal.close()

    def _changed(self, job_id: bytes) -> None:
        """A job changed (JobPool.on_change): keep it in the journal and tell the bus; one the pool dropped
        leaves the compute side's claim queue."""
        if self._journal is not None:
            self._journal.save(job_id)
        if self.pool.get(job_id) is None:
            self._compute.dropped(job_id)
        self._ctx.spawn(self._bus.publish(JobChanged(job_id)), "job-changed")

    @contextlib.asynccontextmanager
    async def watch(self, job_id: bytes) -> AsyncIterator[asyncio.Event]:
        """An event set on every JobChanged of `job_id` while the block runs.

        Subscribe, then look at the job, then wait: a change between the look and the wait is not missed.
        """
        changed = asyncio.Event()

        async def on_change(event: JobChanged) -> None:
            if event.job_id == job_id:
                changed.set()

        subscription = self._bus.subscribe(JobChanged, on_change)
        try:
            yield changed
        finally:
            await self._bus.unsubscribe(subscription)

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
        verify: str = "full",
    ) -> bytes:
        """submitjob: fund the escrow, publish the job; the Job ID. ValueError/WalletError for bad input."""
        return await self._client.submit(
            prompt, max_tokens, model_id, seed, temperature_milli, reward, timelock, verify
        )

    def fill(self) -> Fills:
        """The job pool, the jobs waiting for an escrow and the market's tables."""
        return {"job_pool": self.pool.fill(), **self._intake.fill(), **self.market.fill()}

    def job_info(self, job_id: bytes) -> dict[str, Any] | None:
        """getjob: the pool's record, with what only this node knows about its own jobs."""
        record = self.pool.get(job_id)
        if record is None:
            return None
        info = record.to_json()
        info["role"] = self._role(record)
        client = self._client.jobs.get(job_id)
        work = self._compute.jobs.get(job_id)
        if client is not None:
            info.update(
                reward=client.reward,
                verdict=None if client.verdict is None else str(client.verdict),
                text=client.text,
                slash_txid=client.slash_txid,
                refund_txid=client.refund_txid,
                checked_by=client.checked_by,
                take_by=take_by(record),
                untaken=untaken(record, client.reward, self.market, time.time()),
                tokens=client.tokens,
                prompt=client.prompt,
            )
            if client.testament is not None and record.reached(JobState.PAID):
                info["paid_node"] = client.testament.node.hex()
        elif work is not None:
            info.update(payment_txid=work.payment_txid, prompt=work.prompt)
        problem = self._compute.prompts.problems.get(job_id)
        if problem is not None:
            info["prompt_problem"] = problem
        play = self._play_of(job_id)
        if play is not None:
            info["game"] = play.info()
        return info

    def compute_policy(self) -> dict[str, Any]:
        """What this node accepts as a compute node, and what it has staked now (for getcomputeinfo)."""
        return self._compute.policy_info()

    def compute_stats(self) -> dict[str, Any]:
        """Jobs taken and declined by kind, tokens computed, earnings since start; stake locked now (base units)."""
        return self._compute.stats()

    def list_jobs(self) -> list[dict[str, Any]]:
        return [
            {"jobid": hex_id(r.job_id), "state": r.state.value, "model": r.params.model_id.hex(), "role": self._role(r)}
            for r in self.pool.jobs()
        ]

    def cancel(self, job_id: bytes) -> None:
        """canceljob: stop our own job before it is paid (the escrow refund after its refund time comes later)."""
        self._client.cancel(job_id)

    # -- the dispute game ------------------------------------------------------------------------------

    def _play_of(self, job_id: bytes) -> GamePlay | None:
        client, work = self._client.jobs.get(job_id), self._compute.jobs.get(job_id)
        if client is not None:
            return client.game
        return None if work is None else work.game

    def _join_game(self, tx: Transaction, game: Game, challenge: Challenge) -> GamePlay | None:
        return self._compute.join_game(tx, game, challenge)

    def _game_ended(self, job_id: bytes, play: GamePlay) -> None:
        """The win that ended a game of ours is mined: the challenger's is the job's slash, on either side."""
        record = self.pool.get(job_id)
        client = self._client.jobs.get(job_id)
        if client is not None and play.outcome is GameOutcome.SLASHED and play.ended_by is not None:
            client.slash_txid = play.ended_by.txid()
        if record is not None and play.outcome is GameOutcome.SLASHED and JobState.SLASHED in TRANSITIONS[record.state]:
            self.pool.advance(record, JobState.SLASHED)

    def _role(self, record: JobRecord) -> str:
        if record.job_id in self._client.jobs:
            return "client"
        return "compute" if record.job_id in self._compute.jobs else "observer"

    # -- flooded messages --------------------------------------------------------------------------

    async def _on_job(self, peer: Peer, message: JobMessage) -> None:
        await self._intake.on_job(peer.id, message)

    def _admitted(self, record: JobRecord, message: JobMessage, peer_id: int) -> None:
        """A peer's job came into the pool (its escrow is here): relay it and show it to the compute side."""
        self._manager.broadcast(message, exclude={peer_id})
        self._compute.offer(record)

    async def _escrow_seen(self, txid: bytes, script: bytes) -> bool:
        return await self._ctx.locate(txid, script) is not None

    async def _on_accept(self, peer: Peer, message: JobAccept) -> None:
        if checked(lambda: self.pool.add_accept(message.job_id, message.node, message.signature)):
            self._manager.broadcast(message, exclude={peer.id})
            self._client.on_accept(message.job_id, message.node)

    async def _on_testament(self, peer: Peer, message: JobTestament) -> None:
        testament = testament_record(message)
        if not checked(lambda: self.pool.add_testament(message.job_id, testament)):
            return
        self._manager.broadcast(message, exclude={peer.id})
        self._client.on_testament(message.job_id, testament)
        self._compute.on_testament(message.job_id, testament)

    async def _on_delivery(self, peer: Peer, message: JobDelivery) -> None:
        delivery = checked(lambda: self.pool.add_delivery(message.job_id, delivery_record(message)))
        if delivery is None:
            return
        self._manager.broadcast(message, exclude={peer.id})
        await self._client.on_delivery(message.job_id, delivery)

    def _bring_up_to_date(self, peer: Peer) -> None:
        """Send a new peer the flooded messages of the jobs still in play, as it would have heard them.

        A node that was down (or is new) learns the jobs, claims, testaments and deliveries it missed;
        a peer that knows them already ignores them without relaying.
        """
        sent, budget = 0, MAX_CATCH_UP_BYTES
        for record in reversed(self.pool.open_jobs()):
            if not record.signature:
                continue
            job_id = record.job_id
            messages: list[Message] = [
                JobMessage(record.params.to_bytes(), record.escrow_txid, record.client_node, record.signature)
            ]
            messages += [JobAccept(job_id, node, sig) for node, sig in record.accept_signatures.items()]
            # A testament or delivery a journal kept from before node keys signed them cannot be relayed.
            messages += [testament_message(job_id, t) for t in record.testaments.values() if t.node_signature]
            messages += [delivery_message(job_id, d) for d in record.deliveries.values() if d.node_signature]
            # The job's transactions may be unconfirmed, and mempools are not exchanged on connect: offer them.
            txids = [record.escrow_txid, *(t.stake_txid for t in record.testaments.values())]
            txids += [payment.txid for payment in record.payments.values() if payment.seen_at is not None]
            txids += list(record.delivery_txids.values())
            messages.append(Inv(tuple(InvItem(InvType.TX, txid) for txid in txids)))
            payloads = [message.to_payload() for message in messages]
            budget -= sum(len(payload) for payload in payloads)
            if budget < 0:
                break
            for message in messages:
                self._manager.send(peer, message)
            sent += 1
        if sent:
            log.info("sent %r the %d jobs still in play", peer, sent)

    async def _on_tx_accepted(self, event: TxAccepted) -> None:
        self._ctx.tx_arrived(event.tx.hash)
        self._games.on_transaction(event.tx, mined=False)
        self._intake.on_transaction(event.tx)
        if (paid := self.pool.record_payment(event.tx)) is not None:
            self.market.on_paid(paid, event.tx)
            log.info("job %s: payment %s seen", hex_id(event.tx.job_id), event.tx.txid())
        self._compute.on_published(event.tx)
        await self._on_delivery_tx(event.tx)

    async def _on_delivery_tx(self, tx: Transaction) -> None:
        """A verified transaction (mempool or block) that may deliver a STAKE: a delivery read from the chain."""
        delivery = self.pool.record_delivery_tx(tx)
        if delivery is not None:
            log.info("job %s: delivery %s seen", hex_id(tx.job_id), tx.txid())
            await self._client.on_delivery(tx.job_id, delivery)

    async def _on_block_disconnected(self, event: BlockDisconnected) -> None:
        self._games.on_disconnected(list(event.block.transactions[1:]))

    async def _on_block_connected(self, event: BlockConnected) -> None:
        transactions = list(event.block.transactions)
        for record in self.pool.settle_block(transactions):
            log.info("job %s %s in block %d", hex_id(record.job_id), record.state.value, event.height)
        for tx in transactions[1:]:
            self._games.on_transaction(tx, mined=True)
            self._intake.on_transaction(tx)
            self._compute.on_published(tx)
            await self._on_delivery_tx(tx)
        self._compute.on_block()
