"""The market estimate: providers' announced prices, settled jobs' PAYOUTs, the fallback, and untaken jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from prompt_support import hidden

from camelid.chain.jobpool import JobPool, job_accept_digest, job_offer_digest
from camelid.core.consensus import COIN
from camelid.core.fill import Fill
from camelid.core.job import JobParams
from camelid.core.transaction import Transaction, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.node.config import ComputePolicy
from camelid.node.jobs.market import FALLBACK_REWARD, MIN_REWARD, SETTLED_AGE, SETTLED_KEPT, Market, take_by, untaken
from camelid.p2p.messages import PRICES_VERSION, ModelPrice, Prices, ServiceFlags, Version

MODEL = b"\x07" * 32
OTHER = b"\x08" * 32
ME = PrivateKey.from_bytes(b"\x01" * 32).public_key.to_bytes()
KEYS = [PrivateKey.from_bytes(bytes([i + 2]) * 32) for i in range(4)]
NODES = [key.public_key.to_bytes() for key in KEYS]
T0 = 1_800_000_000


@dataclass
class Manager:
    """The two PeerManager calls the market makes: who is connected, and what was sent to whom."""

    connected: list[bytes] = field(default_factory=list)
    sent: list[tuple[object, object]] = field(default_factory=list)
    max_connections: int = 125

    def peers(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(node_id=node) for node in self.connected]

    def send(self, peer: object, message: object) -> None:
        self.sent.append((peer, message))


def peer(
    node: bytes, models: tuple[bytes, ...] = (MODEL,), services: int = ServiceFlags.COMPUTE, protocol: int = 3
) -> SimpleNamespace:
    version = Version("regtest", protocol, services, 0, node, models, "", 0, 0, 0, bytes(32))
    return SimpleNamespace(version=version)


async def announce(market: Market, node: bytes, *prices: tuple[bytes, int], **peer_args) -> None:
    await market.on_prices(peer(node, **peer_args), Prices(tuple(ModelPrice(m, p) for m, p in prices)))


def job(pool: JobPool, max_tokens: int = 100, prompt: str = "llamas", timelock: int = 60):
    client = PrivateKey.from_bytes(b"\x11" * 32)
    params = JobParams(MODEL, *hidden(prompt), max_tokens, 0, 0, T0, timelock, client.public_key.to_bytes(), "", 1)
    signature = client.sign(job_offer_digest(params.job_id(), b"\x66" * 32, NODES[0]))
    return pool.add_job(params.to_bytes(), b"\x66" * 32, NODES[0], signature)


def payout(value: int) -> Transaction:
    return Transaction(1, (), (TxOut(value, b"\x51"),), 0)


async def test_the_estimate_is_the_median_price_of_connected_providers_for_the_model():
    manager = Manager(connected=NODES[:3])
    market = Market(manager, ME, lambda: None, clock=lambda: T0)
    assert market.estimate(MODEL, 100)["reward"] == FALLBACK_REWARD
    await announce(market, NODES[0], (MODEL, COIN // 10))
    await announce(market, NODES[1], (MODEL, COIN // 100), (OTHER, 5), models=(MODEL, OTHER))
    await announce(market, NODES[2], (MODEL, COIN), services=ServiceFlags.FULL_NODE)  # sells nothing: ignored
    await announce(market, NODES[3], (MODEL, COIN))  # not connected: ignored
    await announce(market, NODES[0], (MODEL, COIN // 20), (OTHER, 9))  # replaces its earlier prices; OTHER unserved
    estimate = market.estimate(MODEL, 2000)
    assert estimate["providers"] == {NODES[0].hex(): COIN // 20, NODES[1].hex(): COIN // 100}
    assert estimate["basis"] == "announced" and estimate["announced_rate"] == (COIN // 20 + COIN // 100) / 2
    assert estimate["reward"] == 2 * (COIN // 20 + COIN // 100) // 2
    assert market.estimate(OTHER, 1000)["providers"] == {NODES[1].hex(): 5}
    assert market.estimate(OTHER, 1000)["reward"] == MIN_REWARD  # a near-free price still pays the fees
    announced = Fill(3, 125)  # NODES[0], [1] and [3]: here a peer not connected could send prices; a real one cannot
    assert market.fill() == {"announced_prices": announced, "settled_payments": Fill(0, SETTLED_KEPT)}


async def test_settled_payouts_raise_the_estimate_and_age_out():
    now = [float(T0)]
    market = Market(Manager(connected=[NODES[0]]), ME, lambda: None, clock=lambda: now[0])
    await announce(market, NODES[0], (MODEL, COIN // 100))
    pool = JobPool(5, clock=lambda: now[0])
    market.on_paid(job(pool, 100, "a"), payout(COIN // 10))  # 1 coin per 1,000 tokens
    market.on_paid(job(pool, 100, "b"), payout(COIN // 10))
    estimate = market.estimate(MODEL, 10)
    assert (estimate["basis"], estimate["settled_rate"], estimate["settled_jobs"]) == ("settled", COIN, 2)
    assert estimate["reward"] == COIN // 100
    now[0] += SETTLED_AGE + 1
    assert market.estimate(MODEL, 1000)["basis"] == "announced"


async def test_a_seller_announces_its_prices_to_a_new_peer_that_knows_the_message():
    manager = Manager()
    policy = ComputePolicy(min_price=7, model_prices=((OTHER, 9),))
    seller = Market(manager, ME, lambda: (policy, (MODEL, OTHER)))
    new, old = peer(NODES[0]), peer(NODES[1], protocol=PRICES_VERSION - 1)
    seller.announce(new)
    seller.announce(old)  # it would disconnect us for an unknown command
    assert manager.sent == [(new, Prices((ModelPrice(MODEL, 7), ModelPrice(OTHER, 9))))]
    Market(manager, ME, lambda: None).announce(new)
    assert len(manager.sent) == 1


def test_a_job_nobody_accepted_by_its_take_by_time_is_reported_with_the_going_reward():
    pool = JobPool(5, clock=lambda: T0)
    market = Market(Manager(), ME, lambda: None)
    record = job(pool, 8)
    assert untaken(record, 5, market, take_by(record) - 0.1) is None
    report = untaken(record, 5, market, take_by(record))
    assert report is not None and report["offered"] == 5 and report["going_reward"] == FALLBACK_REWARD
    pool.add_accept(record.job_id, NODES[1], KEYS[1].sign(job_accept_digest(record.job_id, NODES[1])))
    assert untaken(record, 5, market, take_by(record)) is None


async def test_prices_go_with_the_connection_so_reconnecting_under_fresh_ids_cannot_grow_the_table():
    manager = Manager()
    market = Market(manager, ME, lambda: None, clock=lambda: T0)
    for i in range(1_000):  # a flooder: connect under a fresh node id, announce, leave
        node = PrivateKey.from_bytes((i + 100).to_bytes(32, "big")).public_key.to_bytes()
        manager.connected = [NODES[0], node]
        await announce(market, node, (MODEL, COIN))
        manager.connected = [NODES[0]]
        market.forget(peer(node))
    assert len(market) == 0
    await announce(market, NODES[0], (MODEL, COIN // 10))
    market.forget(peer(NODES[0]))  # one of two connections to NODES[0] closed: the other still stands
    assert market.estimate(MODEL, 1000)["providers"] == {NODES[0].hex(): COIN // 10}
    manager.connected = []
    market.forget(peer(NODES[0]))
    assert len(market) == 0
