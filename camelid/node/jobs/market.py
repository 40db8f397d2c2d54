"""The compute market as this node sees it: the prices its peers announce and the rewards of settled jobs.

A compute node announces its --min-price per served model to every peer after the handshake (a `prices`
message; camelid.p2p.messages.prices). Every node keeps its connected peers' latest announcements and the
PAYOUTs of the last SETTLED_KEPT job payments it saw (mempool or block), and estimates from both a reward
likely to be taken (estimatejobreward; the default reward of submitjob and the /v1 API):

- the announced rate: the median of the connected providers' prices for the model (at least half of them
  would take the job), in base units per 1,000 output tokens;
- the settled rate: the median PAYOUT per 1,000 max_tokens of that model's payments of the last SETTLED_AGE;
- the estimate: the higher of the two, times max_tokens / 1,000, rounded up, and at least MIN_REWARD;
  with neither, FALLBACK_REWARD.

Only direct peers' prices are known: announcements are not relayed.

A client job that no node has accepted by its take-by time (the deadline less the scheduler's
`patience`, after which no node takes it) is reported as untaken, with the going reward (`untaken`).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from camelid.core.consensus import COIN
from camelid.core.fill import Fill, Fills
from camelid.node.jobs.client import PAYMENT_FEE
from camelid.node.jobs.common import RELEASE_FEE
from camelid.node.jobs.scheduler import patience
from camelid.p2p.messages import PRICES_VERSION, ModelPrice, Prices, ServiceFlags

if TYPE_CHECKING:
    from camelid.chain.jobpool import JobRecord
    from camelid.core.transaction import Transaction
    from camelid.node.config import ComputePolicy
    from camelid.p2p.manager import PeerManager
    from camelid.p2p.peer import Peer

SETTLED_KEPT = 200
"""Payments remembered, all models together."""
SETTLED_AGE = 24 * 3600
"""Seconds a payment counts in the settled rate."""
FALLBACK_REWARD = COIN
"""The reward offered when neither prices nor payments are known for the model (submitjob's old default)."""
MIN_REWARD = 10 * (PAYMENT_FEE + RELEASE_FEE)
"""The least reward estimated: the fees of the payment and of the PAYOUT's release take at most a tenth."""


@dataclass(frozen=True)
class SettledJob:
    model_id: bytes
    max_tokens: int
    paid: int  # base units of the PAYOUT
    at: float


class Market:
    """This node's view of compute prices; `announce(peer)` is a ready listener, `forget(peer)` a gone listener,
    `on_prices` a message handler. Prices are held only for connected providers: node ids cost nothing, so
    prices kept after a disconnect would let one peer grow the table without bound by reconnecting."""

    def __init__(
        self,
        manager: PeerManager,
        node_id: bytes,
        own_prices: Callable[[], tuple[ComputePolicy, tuple[bytes, ...]] | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`own_prices()`: (our policy, the models we sell) if this node sells compute, else None."""
        self._manager = manager
        self._node_id = node_id
        self._own_prices = own_prices
        self._clock = clock
        self._announced: dict[bytes, dict[bytes, int]] = {}  # node id -> model id -> base units per 1,000 tokens
        self._settled: OrderedDict[bytes, SettledJob] = OrderedDict()  # by Job ID, oldest first

    def fill(self) -> Fills:
        """Providers' announced prices (one entry per connected compute node) and the payments remembered."""
        return {
            "announced_prices": Fill(len(self._announced), self._manager.max_connections),
            "settled_payments": Fill(len(self._settled), SETTLED_KEPT),
        }

    def announce(self, peer: Peer) -> None:
        """Tell a new peer our prices, if we sell compute and it knows the `prices` message."""
        own = self._own_prices()
        if own is not None and own[1] and peer.version is not None and peer.version.protocol_version >= PRICES_VERSION:
            policy, models = own
            self._manager.send(peer, Prices(tuple(ModelPrice(m, policy.price_for(m)) for m in models)))

    async def on_prices(self, peer: Peer, message: Prices) -> None:
        """A peer's prices replace its earlier ones; prices for models its version did not announce are ignored."""
        version = peer.version
        if version is None or not version.services & ServiceFlags.COMPUTE:
            return
        served = set(version.models)
        prices = {p.model_id: p.per_1000_tokens for p in message.prices if p.model_id in served}
        self._announced[version.node_id] = prices

    def forget(self, peer: Peer) -> None:
        """A connection closed: its node's prices go, unless another connection to the same node is still open."""
        version = peer.version
        if version is not None and all(p.node_id != version.node_id for p in self._manager.peers()):
            self._announced.pop(version.node_id, None)

    def __len__(self) -> int:
        """Providers whose prices are held."""
        return len(self._announced)

    def on_paid(self, record: JobRecord, payment: Transaction) -> None:
        """A payment of `record`'s escrow reached our mempool or a block: its PAYOUT is what the job fetched."""
        self._settled.pop(record.job_id, None)
        self._settled[record.job_id] = SettledJob(
            record.params.model_id, record.params.max_tokens, payment.outputs[0].value, self._clock()
        )
        while len(self._settled) > SETTLED_KEPT:
            self._settled.popitem(last=False)

    def announced_prices(self, model_id: bytes) -> dict[bytes, int]:
        """Connected providers' prices for `model_id` (base units per 1,000 tokens), by node id; ours left out."""
        connected = {p.node_id for p in self._manager.peers()} - {self._node_id}
        return {
            node: prices[model_id]
            for node, prices in self._announced.items()
            if node in connected and model_id in prices
        }

    def estimate(self, model_id: bytes, max_tokens: int) -> dict[str, Any]:
        """A reward likely to be taken for a job of `max_tokens` on `model_id`, with the data it came from.

        Amounts are base units; rates are base units per 1,000 output tokens.
        """
        prices = self.announced_prices(model_id)
        since = self._clock() - SETTLED_AGE
        settled = [s for s in self._settled.values() if s.model_id == model_id and s.at >= since]
        announced_rate = statistics.median(prices.values()) if prices else None
        settled_rate = statistics.median(s.paid * 1000 / s.max_tokens for s in settled) if settled else None
        rates = [rate for rate in (announced_rate, settled_rate) if rate is not None]
        if rates:
            reward = max(MIN_REWARD, math.ceil(max(rates) * max_tokens / 1000))
            basis = "announced" if announced_rate == max(rates) else "settled"
        else:
            reward, basis = FALLBACK_REWARD, "fallback"
        return {
            "reward": reward,
            "basis": basis,
            "announced_rate": announced_rate,
            "settled_rate": settled_rate,
            "providers": {node.hex(): price for node, price in prices.items()},
            "settled_jobs": len(settled),
        }


def take_by(record: JobRecord) -> float:
    """When the last node could still take the job: later, no scheduler opens it (JobScheduler.is_open)."""
    params = record.params
    return params.timestamp + params.timelock - patience(params.max_tokens)


def untaken(record: JobRecord, offered: int, market: Market, now: float) -> dict[str, Any] | None:
    """For a client job nobody accepted by its take-by time: what it offered and the going reward now."""
    if record.accepted_by or record.testaments or now < take_by(record):
        return None
    going = market.estimate(record.params.model_id, record.params.max_tokens)
    return {"offered": offered, "going_reward": going["reward"], "market": going}
