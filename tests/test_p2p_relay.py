"""The relay/sync layer against a real chain state: headers served, missing blocks found, and misbehaviour judged."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from chain_helpers import build_block, coinbase_spendable, make_key, mine, pay, spend

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import TxRejected
from camelid.core.block import BlockHeader
from camelid.core.params import get_params
from camelid.core.transaction import OutPoint, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.node.bus import EventBus
from camelid.node.chain_service import ChainService
from camelid.node.p2p_service import load_node_key
from camelid.p2p.manager import P2PSettings, PeerManager
from camelid.p2p.messages import (
    MAX_HEADERS,
    BlockMessage,
    GetData,
    GetHeaders,
    Headers,
    InvItem,
    InvType,
    TxMessage,
)
from camelid.p2p.peer import Peer
from camelid.p2p.peer_address import parse_peer_address
from camelid.p2p.relay import Relay, is_misbehaviour, objects_for
from camelid.p2p.sync import DOWNLOAD_WINDOW, MAX_WANTED, NO_STOP, BlockSync, headers_after, missing_blocks

REGTEST = get_params("regtest")
LOCALHOST = "127.0.0.1"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def chainstate(tmp_path):
    chain = ChainState.open(tmp_path / "chainstate", REGTEST)
    yield chain
    chain.close()


def heights_of(chain: ChainState, raw_headers: list[bytes]) -> list[int]:
    return [chain.get_entry(BlockHeader.from_bytes(raw).hash_bytes).height for raw in raw_headers]


def test_headers_follow_the_first_locator_hash_on_our_active_chain(chainstate):
    blocks = mine(chainstate, 10)
    side = mine(chainstate, 1, parent=blocks[3].hash_bytes, key=make_key(9))[0]  # a stale branch at height 5
    unknown = bytes(range(32))

    assert heights_of(chainstate, headers_after(chainstate, (unknown, blocks[6].hash_bytes), NO_STOP)) == [8, 9, 10]
    # A locator hash off our active chain is skipped, as one we never saw; none at all means from genesis.
    assert heights_of(chainstate, headers_after(chainstate, (side.hash_bytes,), NO_STOP)) == list(range(1, 11))
    assert heights_of(chainstate, headers_after(chainstate, (), blocks[2].hash_bytes)) == [1, 2, 3]
    assert headers_after(chainstate, (blocks[-1].hash_bytes,), NO_STOP) == []


def test_missing_blocks_are_those_neither_indexed_nor_held_as_orphans(chainstate):
    blocks = mine(chainstate, 3)
    headers = [block.header for block in blocks]
    assert missing_blocks(chainstate, headers) == (True, [])

    stranger = replace(blocks[0].header, prev_hash=bytes(32), nonce=7)
    assert missing_blocks(chainstate, [stranger]) == (False, [stranger.hash_bytes])


def test_a_getdata_is_read_in_pieces_that_fill_the_send_buffer_up_to_its_budget(chainstate):
    blocks = mine(chainstate, 4)
    size = len(blocks[0].to_bytes())
    items = [InvItem(InvType.BLOCK, block.hash_bytes) for block in blocks]
    unknown = InvItem(InvType.BLOCK, bytes(32))
    assert objects_for(chainstate, None, items, 1) == [blocks[0].to_bytes()]  # one at least, however small the room
    assert objects_for(chainstate, None, items, 2 * size + 1) == [block.to_bytes() for block in blocks[:3]]
    assert objects_for(chainstate, None, [unknown, *items], 10**6) == [None, *(b.to_bytes() for b in blocks)]


@pytest.mark.parametrize(
    ("reason", "punished"),
    [
        ("mandatory-script-verify-flag-failed (EVAL_FALSE)", True),
        ("bad-txns-in-belowout", True),
        ("bad-txns-vout-negative", True),
        ("bad-txns-inputs-missingorspent", False),
        ("bad-txns-premature-spend-of-coinbase", False),
        ("txn-already-in-mempool", False),
        ("min relay fee not met", False),
        ("txn-mempool-conflict", False),
        ("bad-job-proof", True),  # a refuted fraud proof: its sender made it up (issue 15)
        ("bad-job-proof-delivery", True),  # a refuted bad-delivery proof: every node decides it without a model
        ("bad-job-game-move", True),  # an invalid game move: the referee is exact and model-free
        ("job-game-open", False),  # a chain rule on values, as "job-claim": policy-named, not punished
    ],
)
def test_only_consensus_failures_count_as_misbehaviour(reason, punished):
    assert is_misbehaviour(TxRejected(reason)) is punished


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:18444", ("127.0.0.1", 18444)),
        ("10.0.0.1", ("10.0.0.1", None)),
        ("[::1]:9733", ("::1", 9733)),
        ("::ffff:1.2.3.4", ("1.2.3.4", None)),
    ],
)
def test_peer_addresses_parse(text, parsed):
    assert parse_peer_address(text) == parsed


@pytest.mark.parametrize("text", ["example.com:9733", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4:x", "[::1]9733", ""])
def test_bad_peer_addresses_are_refused(text):
    with pytest.raises(ValueError):
        parse_peer_address(text)


def test_the_node_key_is_created_private_and_kept(tmp_path):
    path = tmp_path / "nodekey"
    key = load_node_key(path, "regtest")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_node_key(path, "regtest").secret == key.secret
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="corrupt"):
        load_node_key(path, "regtest")


async def eventually(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def p2p_settings(**changes: object) -> P2PSettings:
    base = P2PSettings(
        params=REGTEST,
        node_key=PrivateKey.generate(),
        bind=LOCALHOST,
        port=0,
        dial_interval=0.05,
    )
    return replace(base, **changes)


async def test_a_peer_relaying_a_bad_signature_is_discouraged_but_not_one_relaying_an_orphan(tmp_path):
    bus = EventBus()
    chain = await ChainService.open(tmp_path / "chainstate", REGTEST, bus, mempool_bytes=10_000_000)
    owner, thief = make_key(1), make_key(2)
    blocks = await chain.call(lambda: mine(chain.chainstate, REGTEST.coinbase_maturity + 2, key=owner))
    coin = coinbase_spendable(blocks[0], owner)
    forged = pay(replace(coinbase_spendable(blocks[1], owner), key=thief), thief)  # signed by the wrong key
    orphan = spend([replace(coin, outpoint=OutPoint(bytes(32), 0))], [TxOut(1_000, b"\x51")])

    node = PeerManager(p2p_settings())
    Relay(node, chain, BlockSync(node, chain))
    task = asyncio.create_task(node.run())
    await node.wait_started()
    honest = PeerManager(p2p_settings(connect=((LOCALHOST, node.listen_port),), listen=False))
    honest_task = asyncio.create_task(honest.run())
    try:
        await eventually(lambda: node.peers() and honest.peers())
        honest.broadcast(TxMessage(orphan.to_bytes()))
        honest.broadcast(TxMessage(pay(coin, owner).to_bytes()))
        await eventually(lambda: len(chain.mempool) == 1)
        assert node.peers()  # an orphan is no offence

        honest.broadcast(TxMessage(forged.to_bytes()))
        await eventually(lambda: not node.peers())
        assert node.bans.is_discouraged(LOCALHOST)
    finally:
        for running in (honest_task, task):
            running.cancel()
        await asyncio.gather(honest_task, task, return_exceptions=True)
        await chain.close()
        await bus.close()


class Node:
    """A PeerManager with block sync and relay over its own chain service, as the daemon wires them."""

    def __init__(self, chain: ChainService, **settings: object) -> None:
        self.chain = chain
        self.manager = PeerManager(p2p_settings(**settings), best_height=lambda: chain.chainstate.tip.height)
        self.sync = BlockSync(self.manager, chain, block_timeout=0.5)
        self.relay = Relay(self.manager, chain, self.sync)
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Node:
        self.tasks = [asyncio.create_task(self.manager.run()), asyncio.create_task(self.sync.run())]
        await self.manager.wait_started()
        return self

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_blocks_a_peer_sits_on_are_fetched_from_another_peer(tmp_path):
    bus = EventBus()
    source = await ChainService.open(tmp_path / "source", REGTEST, bus, mempool_bytes=1_000_000)
    syncing = await ChainService.open(tmp_path / "syncing", REGTEST, bus, mempool_bytes=1_000_000)
    blocks = await source.call(lambda: mine(source.chainstate, 5))
    node = await Node(syncing).start()

    # The staller claims the chain and serves its headers, but never the blocks.
    asked_staller: list[GetData] = []
    staller = PeerManager(
        p2p_settings(connect=((LOCALHOST, node.manager.listen_port),), listen=False), best_height=lambda: 5
    )

    async def serve_headers(peer: Peer, message: GetHeaders) -> None:
        peer.send(Headers(tuple(headers_after(source.chainstate, message.locator, message.stop))))

    async def sit_on(peer: Peer, message: GetData) -> None:
        asked_staller.append(message)

    staller.register_handler("getheaders", serve_headers)
    staller.register_handler("getdata", sit_on)
    staller_task = asyncio.create_task(staller.run())
    honest = Node(source, connect=((LOCALHOST, node.manager.listen_port),), listen=False)
    try:
        await eventually(lambda: asked_staller)
        assert syncing.tip_hash == REGTEST.genesis_hash
        await honest.start()
        await eventually(lambda: syncing.tip_hash == blocks[-1].hash_bytes)
        assert honest.manager.peers()  # the staller may be dropped (see sync.MAX_STALLS), never the honest peer
    finally:
        staller_task.cancel()
        await asyncio.gather(staller_task, return_exceptions=True)
        await honest.stop()
        await node.stop()
        await source.close()
        await syncing.close()
        await bus.close()


def header_chain(count: int) -> list[BlockHeader]:
    """`count` chained regtest headers on genesis, each with valid proof of work (their blocks need not exist)."""
    headers = []
    prev = REGTEST.genesis.header
    for _ in range(count):
        header = BlockHeader(1, prev.hash_bytes, bytes(32), prev.time + REGTEST.target_spacing, prev.bits, 0)
        while not header.check_pow(REGTEST.pow_limit):
            header = header.with_nonce(header.nonce + 1)
        headers.append(header)
        prev = header
    return headers


class Feeder:
    """A bare PeerManager connected to `node` that records the getheaders and getdata it is sent."""

    def __init__(self, node: Node) -> None:
        self.manager = PeerManager(p2p_settings(connect=((LOCALHOST, node.manager.listen_port),), listen=False))
        self.asked: list[GetHeaders] = []
        self.requested: list[GetData] = []
        self.manager.register_handler("getheaders", self._record_getheaders)
        self.manager.register_handler("getdata", self._record_getdata)
        self.task = asyncio.create_task(self.manager.run())

    async def _record_getheaders(self, peer: Peer, message: GetHeaders) -> None:
        self.asked.append(message)

    async def _record_getdata(self, peer: Peer, message: GetData) -> None:
        self.requested.append(message)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_a_full_headers_message_makes_the_node_ask_for_the_next_batch(tmp_path):
    bus = EventBus()
    chain = await ChainService.open(tmp_path / "chainstate", REGTEST, bus, mempool_bytes=1_000_000)
    node = await Node(chain).start()
    feeder = Feeder(node)
    headers = header_chain(MAX_HEADERS)
    try:
        await eventually(lambda: feeder.manager.peers())
        feeder.manager.broadcast(Headers(tuple(header.to_bytes() for header in headers)))
        await eventually(lambda: feeder.asked and feeder.requested)
        assert feeder.asked == [GetHeaders((headers[-1].hash_bytes,), NO_STOP)]
        # The first blocks of the batch are requested, a window's worth at most.
        wanted = [item.hash for message in feeder.requested for item in message.items]
        assert wanted == [header.hash_bytes for header in headers[: len(wanted)]]
        assert len(wanted) <= DOWNLOAD_WINDOW
    finally:
        await feeder.stop()
        await node.stop()
        await chain.close()
        await bus.close()


async def test_an_orphan_block_makes_the_node_ask_its_sender_for_the_missing_headers(tmp_path):
    bus = EventBus()
    source = await ChainService.open(tmp_path / "source", REGTEST, bus, mempool_bytes=1_000_000)
    chain = await ChainService.open(tmp_path / "chainstate", REGTEST, bus, mempool_bytes=1_000_000)
    blocks = await source.call(lambda: mine(source.chainstate, 2))
    node = await Node(chain).start()
    feeder = Feeder(node)
    try:
        await eventually(lambda: feeder.manager.peers())
        feeder.manager.broadcast(BlockMessage(blocks[1].to_bytes()))
        await eventually(lambda: feeder.asked)
        assert feeder.asked == [GetHeaders((REGTEST.genesis_hash,), NO_STOP)]
        assert blocks[1].hash_bytes in chain.chainstate.orphans
        assert node.manager.peers()
    finally:
        await feeder.stop()
        await node.stop()
        await source.close()
        await chain.close()
        await bus.close()


async def test_a_peer_sending_an_invalid_block_is_discouraged_and_the_blocks_before_it_stay(tmp_path):
    bus = EventBus()
    source = await ChainService.open(tmp_path / "source", REGTEST, bus, mempool_bytes=1_000_000)
    chain = await ChainService.open(tmp_path / "chainstate", REGTEST, bus, mempool_bytes=1_000_000)
    valid = await source.call(lambda: mine(source.chainstate, 6))
    bad = await source.call(lambda: build_block(source.chainstate, parent=valid[2].hash_bytes, merkle=bytes(32)))
    node = await Node(chain).start()
    feeder = Feeder(node)
    try:
        await eventually(lambda: feeder.manager.peers())
        for block in [*valid[:3], bad, *valid[3:]]:  # sent back to back: the connector takes them in a run or two
            feeder.manager.broadcast(BlockMessage(block.to_bytes()))
        await eventually(lambda: not node.manager.peers())
        assert node.manager.bans.is_discouraged(LOCALHOST)
        assert chain.chainstate.is_in_active_chain(valid[2].hash_bytes)
        assert chain.chainstate.get_entry(bad.hash_bytes) is None
    finally:
        await feeder.stop()
        await node.stop()
        await source.close()
        await chain.close()
        await bus.close()


async def test_headers_beyond_the_download_queue_wait_until_it_drains(tmp_path):
    bus = EventBus()
    chain = await ChainService.open(tmp_path / "chainstate", REGTEST, bus, mempool_bytes=1_000_000)
    node = await Node(chain).start()
    feeder = Feeder(node)  # it never serves a block, so the queue never drains
    headers = header_chain(MAX_WANTED)
    try:
        await eventually(lambda: feeder.manager.peers())
        for start in range(0, MAX_WANTED, MAX_HEADERS):
            feeder.manager.broadcast(Headers(tuple(h.to_bytes() for h in headers[start : start + MAX_HEADERS])))
        await eventually(lambda: len(feeder.asked) == MAX_WANTED // MAX_HEADERS - 1)
        await asyncio.sleep(1.0)  # a few sync ticks: still no request past the full queue
        assert [message.locator for message in feeder.asked] == [
            (headers[end - 1].hash_bytes,) for end in range(MAX_HEADERS, MAX_WANTED, MAX_HEADERS)
        ]
    finally:
        await feeder.stop()
        await node.stop()
        await chain.close()
        await bus.close()


async def test_blocks_waiting_for_a_missing_parent_count_against_the_download_window(tmp_path):
    """One slow block must not let the other peers fill the orphan pool until it evicts (then re-download)."""
    bus = EventBus()
    source = await ChainService.open(tmp_path / "source", REGTEST, bus, mempool_bytes=1_000_000)
    chain = await ChainService.open(tmp_path / "chainstate", REGTEST, bus, mempool_bytes=1_000_000)
    blocks = await source.call(lambda: mine(source.chainstate, 2 * DOWNLOAD_WINDOW))
    node = await Node(chain).start()
    feeders = [Feeder(node), Feeder(node)]  # two sources, so the window, not one peer's share, is the limit
    try:
        await eventually(lambda: all(feeder.manager.peers() for feeder in feeders))
        for feeder in feeders:
            feeder.manager.broadcast(Headers(tuple(block.header.to_bytes() for block in blocks)))

        def requested() -> set[bytes]:
            return {item.hash for feeder in feeders for message in feeder.requested for item in message.items}

        await eventually(lambda: len(requested()) == DOWNLOAD_WINDOW)
        for block in blocks[1:DOWNLOAD_WINDOW]:  # everything asked for but the first block
            feeders[0].manager.broadcast(BlockMessage(block.to_bytes()))
        await eventually(lambda: len(chain.chainstate.orphans) == DOWNLOAD_WINDOW - 1)
        await asyncio.sleep(1.5)  # sync ticks, and the first block's request timing out and going out again
        assert requested() == {block.hash_bytes for block in blocks[:DOWNLOAD_WINDOW]}  # nothing past the window
    finally:
        for feeder in feeders:
            await feeder.stop()
        await node.stop()
        await source.close()
        await chain.close()
        await bus.close()
