"""What RPC handlers can reach: the node's services, the bus, node facts, and the method table (for help)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from camelid.core.params import ChainParams
from camelid.node.bus import EventBus
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.registry import MethodRegistry

if TYPE_CHECKING:
    from camelid.node.chain_service import ChainService
    from camelid.node.compute_service import ComputeService
    from camelid.node.jobs import JobService
    from camelid.node.miner import Miner
    from camelid.node.model_service import ModelService
    from camelid.node.p2p_service import P2PService
    from camelid.node.tasks import TaskService
    from camelid.node.wallet_service import WalletService


@dataclass
class RPCContext:
    """Handed to every handler. `chain` and `miner` answer -28 (warming up) until the chain state has loaded."""

    params: ChainParams
    bus: EventBus
    methods: MethodRegistry = field(default_factory=MethodRegistry)  # what the server answers, and help lists
    started: float = field(default_factory=time.monotonic)
    warmup_status: str = "Loading block index..."
    chain_service: ChainService | None = None
    miner_service: Miner | None = None
    wallet_service: WalletService | None = None  # None also after warm-up when wallets are disabled
    mining: bool = False  # whether the node runs the continuous --mine loop
    p2p_service: P2PService | None = None
    model_service: ModelService | None = None
    job_service: JobService | None = None
    compute_service: ComputeService | None = None
    task_service: TaskService | None = None

    @property
    def p2p(self) -> P2PService:
        """The P2P service; -28 while the node is still starting."""
        if self.p2p_service is None:
            raise RPCError(RPCErrorCode.IN_WARMUP, self.warmup_status)
        return self.p2p_service

    @property
    def models(self) -> ModelService:
        """The model store and fetches; -28 while the node is still starting."""
        if self.model_service is None or self.p2p_service is None:
            raise RPCError(RPCErrorCode.IN_WARMUP, self.warmup_status)
        return self.model_service

    @property
    def compute(self) -> ComputeService:
        """The llama.cpp workers; -28 until the served models' self-checks are done."""
        if self.compute_service is None or self.p2p_service is None:
            raise RPCError(RPCErrorCode.IN_WARMUP, self.warmup_status)
        return self.compute_service

    @property
    def jobs(self) -> JobService:
        """The job pool and this node's jobs; -28 while the node is still starting."""
        if self.job_service is None:
            raise RPCError(RPCErrorCode.IN_WARMUP, self.warmup_status)
        return self.job_service

    @property
    def tasks(self) -> TaskService:
        """Fractal tasks over the job service; -28 while the node is still starting."""
        if self.task_service is None:
            raise RPCError(RPCErrorCode.IN_WARMUP, self.warmup_status)
        return self.task_service

    @property
    def warming_up(self) -> bool:
        return self.chain_service is None

    @property
    def chain(self) -> ChainService:
        if self.chain_service is None:
            raise RPCError(RPCErrorCode.IN_WARMUP, self.warmup_status)
        return self.chain_service

    @property
    def miner(self) -> Miner:
        if self.miner_service is None:
            raise RPCError(RPCErrorCode.IN_WARMUP, self.warmup_status)
        return self.miner_service

    @property
    def wallets(self) -> WalletService:
        """The wallet service; -28 while warming up, and as if the method did not exist with wallets disabled."""
        if self.warming_up:
            raise RPCError(RPCErrorCode.IN_WARMUP, self.warmup_status)
        if self.wallet_service is None:
            raise RPCError(RPCErrorCode.METHOD_NOT_FOUND, "Method not found (wallet is disabled)")
        return self.wallet_service

    def finish_warmup(self, chain_service: ChainService, miner: Miner, wallets: WalletService | None = None) -> None:
        self.chain_service = chain_service
        self.miner_service = miner
        self.wallet_service = wallets
