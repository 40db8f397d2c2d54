"""The job service every node runs (whitepaper 2.4, docs/jobs-design.md): the pool, its relay, and the RPC face.

Every node tracks the flooded job messages in its JobPool and relays the new, valid ones; this module owns
that and hands each role what concerns it: new jobs to the compute side (JobComputer), testaments and
deliveries to the client side (JobClient), payments to the compute side. The RPC methods (submitjob,
getjob, listjobs, canceljob) call in here, and read both roles' records to describe a job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from camelid.chain.jobpool import JobPool, JobRecord, JobRejected, JobState, TestamentRecord
from camelid.node.events import BlockConnected
from camelid.node.jobs.client import DEFAULT_TIMELOCK, JobClient
from camelid.node.jobs.common import JobContext, hex_id
from camelid.node.jobs.compute import JobComputer
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.messages import JobAccept, JobDelivery, JobMessage, JobPayment, JobTestament

if TYPE_CHECKING:
    from camelid.node.bus import EventBus
    from camelid.node.chain_service import ChainService
    from camelid.node.model_service import ModelService
    from camelid.node.p2p_service import P2PService
    from camelid.node.wallet_service import WalletService
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 60.0


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
        self.chain = chain
        self.pool = JobPool(chain.params.dispute_window)
        self._manager = p2p.manager
        self._ctx = JobContext(chain, self.pool, p2p.manager, p2p.node_key, models, wallets)
        self._client = JobClient(self._ctx)
        self._compute = JobComputer(self._ctx, serving=serve and wallets is not None, cheat=cheat)
        for command, handler in (
            (JobMessage.command, self._on_job),
            (JobAccept.command, self._on_accept),
            (JobTestament.command, self._on_testament),
        ):
            self._manager.register_handler(command, handler)
        self._manager.register_directed_handler(JobPayment.command, self._compute.on_payment)
        self._manager.register_directed_handler(JobDelivery.command, self._client.on_delivery)
        bus.subscribe(BlockConnected, self._on_block_connected)

    async def run(self) -> None:
        await self._compute.preload()
        try:
            while True:
                await asyncio.sleep(PRUNE_INTERVAL)
                self.pool.prune()
        finally:
            await self._ctx.close()

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
        return await self._client.submit(prompt, max_tokens, model_id, seed, temperature_milli, reward, timelock)

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
            info.update(reward=client.reward, verdict=client.verdict, text=client.text, slash_txid=client.slash_txid)
            if client.testament is not None and record.reached(JobState.PAID):
                info["paid_node"] = client.testament.node.hex()
        elif work is not None:
            info["payment_txid"] = work.payment_txid
        return info

    def list_jobs(self) -> list[dict[str, Any]]:
        return [
            {"jobid": hex_id(r.job_id), "state": r.state.value, "model": r.params.model_id.hex(), "role": self._role(r)}
            for r in self.pool.jobs()
        ]

    def cancel(self, job_id: bytes) -> None:
        """canceljob: stop our own job before it is paid (the escrow refund after its refund time comes later)."""
        self._client.cancel(job_id)

    def _role(self, record: JobRecord) -> str:
        if record.job_id in self._client.jobs:
            return "client"
        return "compute" if record.job_id in self._compute.jobs else "observer"

    # -- flooded messages --------------------------------------------------------------------------

    async def _on_job(self, peer: Peer, message: JobMessage) -> None:
        record = self._checked(
            lambda: self.pool.add_job(message.params, message.escrow_txid, message.client_node, message.signature)
        )
        if record is None:
            return
        self._manager.broadcast(message, exclude={peer.id})
        self._compute.offer(record)

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
        self._client.on_testament(message.job_id, testament)

    @staticmethod
    def _checked(add: Callable[[], Any]) -> Any:
        try:
            return add()
        except JobRejected as exc:
            raise ProtocolViolation(f"bad-job: {exc}") from None

    async def _on_block_connected(self, event: BlockConnected) -> None:
        for record in self.pool.settle_block(list(event.block.transactions)):
            log.info("job %s settled in block %d", hex_id(record.job_id), event.height)
