"""Headers-first block download (whitepaper 2.1): learn the peer's chain from headers, then fetch its blocks.

After the handshake we send `getheaders` (our block locator) to every peer that
claims a taller chain. Each `headers` answer adds the blocks we lack to an
ordered wish list; up to DOWNLOAD_WINDOW of them are in flight at once, spread
over the peers that announced them (at most PER_PEER_WINDOW each). A request
unanswered for BLOCK_TIMEOUT seconds is taken from its peer and given to
another one that has the block. A full `headers` message (MAX_HEADERS entries)
means the peer has more: we ask again from its last header, at once while
fewer than MAX_WANTED blocks are queued, else once the queue has drained to
half, so memory stays bounded however long the peer's chain is. Unsolicited
headers are bound the same way: past MAX_WANTED queued blocks, the rest of a
message waits (we ask its sender again from where we stopped once the queue has
drained), so no number of cheap minimum-work headers grows the queue further.

A peer whose requests time out MAX_STALLS ticks running, without a block or a
notfound in between, announced blocks it does not serve: it is disconnected and
its announcements forgotten, rather than asked again forever. It is not
discouraged, since an honest peer on a slow link can stall too.

Download, decode and connect overlap: a received block is decoded on the event
loop and queued, and the peer's next message is read at once; a connector task
hands everything queued to the chain backend in one call (one chain-thread trip
and one fsync for the run, camelid.node.chain_service.ChainService satisfies
ChainBackend) while the next blocks download. Queued blocks count against the
download window, and a full queue holds the sender back, so memory stays
bounded. A block that breaks a consensus rule gets the peer that sent it
disconnected and discouraged, as a ProtocolViolation would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from camelid.chain.chainstate import BlockResult, ChainState
from camelid.chain.errors import BlockRejected
from camelid.chain.mempool import Mempool
from camelid.core.block import Block, BlockHeader
from camelid.core.fill import Fill, Fills
from camelid.core.serialize import hash_to_hex
from camelid.core.transaction import Transaction
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.limits import RecentSet
from camelid.p2p.manager import PeerManager
from camelid.p2p.messages import MAX_HEADERS, BlockMessage, GetData, GetHeaders, Headers, InvItem, InvType, SendHeaders
from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_STOP = bytes(32)
DOWNLOAD_WINDOW = 64  # blocks in flight or waiting as orphans; below the orphan pool's 100, so none is evicted
PER_PEER_WINDOW = 32  # blocks in flight from one peer, so that a second peer gets a share
BLOCK_TIMEOUT = 10.0  # seconds before an unanswered block request goes to another peer
TICK = 0.5  # seconds between checks for new peers and stalled requests
KNOWN_INVENTORY = 5_000
"""Hashes remembered per peer as known to it, so that we do not announce them back. About 0.8 MiB a peer, the
order of the rolling filter Bitcoin keeps; 50,000 (one maximal inv) was 8 MiB a peer, 1 GB over 125 connections.
A hash forgotten early only costs one redundant announcement: we relay within seconds of hearing of an item, and
no honest peer announces thousands of others in between."""
MAX_WANTED = 8 * MAX_HEADERS  # blocks queued for download; headers beyond wait until the queue drains to half
MAX_STALLS = 3  # request timeouts in a row, with nothing served between, before a peer is dropped
# Rejections that say nothing bad about the sender: its clock, our reorg limit, or a block it could not know.
BLAMELESS_BLOCK_REASONS = frozenset({"time-too-new", "reorg-too-deep", "duplicate-invalid"})


class ChainBackend(Protocol):
    """What the P2P layer needs of the node's chain service; every chainstate read goes through `call`."""

    chainstate: ChainState
    mempool: Mempool

    async def call(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def submit_block(self, block: Block) -> BlockResult: ...

    async def submit_blocks(self, blocks: list[Block]) -> list[BlockResult | BlockRejected]: ...

    async def submit_transaction(self, tx: Transaction) -> Any: ...


def ready_peers(manager: PeerManager) -> list[Peer]:
    """Peers that completed the handshake and are still connected."""
    peers = (manager.peer(info.id) for info in manager.peers())
    return [peer for peer in peers if peer is not None and not peer.closed]


def headers_after(chainstate: ChainState, locator: tuple[bytes, ...], stop: bytes) -> list[bytes]:
    """Chain thread: raw headers of our active chain after the first locator hash on it (genesis if none)."""
    start = 1
    for block_hash in locator:
        if chainstate.is_in_active_chain(block_hash):
            entry = chainstate.get_entry(block_hash)
            assert entry is not None
            start = entry.height + 1
            break
    headers = []
    for height in range(start, min(start + MAX_HEADERS, chainstate.tip.height + 1)):
        entry = chainstate.get_entry(chainstate.get_hash_at_height(height) or b"")
        assert entry is not None
        headers.append(entry.header.to_bytes())
        if entry.hash == stop:
            break
    return headers


def missing_blocks(chainstate: ChainState, headers: list[BlockHeader]) -> tuple[bool, list[bytes]]:
    """Chain thread: whether the first header's parent is known, and the hashes of blocks we do not have."""
    connects = chainstate.get_entry(headers[0].prev_hash) is not None
    missing = [
        header.hash_bytes
        for header in headers
        if chainstate.get_entry(header.hash_bytes) is None and header.hash_bytes not in chainstate.orphans
    ]
    return connects, missing


def has_block(chainstate: ChainState, block_hash: bytes) -> bool:
    """Chain thread: whether we hold the block, indexed or waiting in the orphan pool for its ancestors."""
    return chainstate.get_entry(block_hash) is not None or block_hash in chainstate.orphans


class KnownInventory:
    """Per peer, the transaction and block hashes it has or was told of, so that announcements are not echoed back."""

    def __init__(self) -> None:
        self._known: dict[int, RecentSet] = {}

    def add(self, peer: Peer, item_hash: bytes) -> bool:
        """Record that `peer` knows `item_hash`; True if that was news."""
        return self._known.setdefault(peer.id, RecentSet(KNOWN_INVENTORY)).add(item_hash)

    def fill(self, peers: int) -> Fill:
        """Hashes remembered over all peers, against KNOWN_INVENTORY for each of `peers` connections."""
        return Fill(sum(len(known) for known in self._known.values()), KNOWN_INVENTORY * peers)

    def keep_only(self, peer_ids: set[int]) -> None:
        """Forget the peers that are gone."""
        self._known = {peer_id: known for peer_id, known in self._known.items() if peer_id in peer_ids}


class BlockSync:
    """Headers-first sync and the block download scheduler; `await run()` alongside the PeerManager."""

    def __init__(self, manager: PeerManager, chain: ChainBackend, block_timeout: float = BLOCK_TIMEOUT) -> None:
        self.manager = manager
        self.chain = chain
        self.block_timeout = block_timeout
        self.known = KnownInventory()  # shared with the relay
        self._greeted: set[int] = set()  # peers we have sent sendheaders (and maybe getheaders) to
        self._wanted: dict[bytes, set[int]] = {}  # block hash -> peers that announced it, in chain order
        self._in_flight: dict[bytes, tuple[int, float]] = {}  # block hash -> (peer id, monotonic deadline)
        self._more_headers: dict[int, bytes] = {}  # peer id -> last header of a full batch, to continue from
        self._submitting: Counter[bytes] = Counter()  # blocks received and queued for, or in, the chain thread
        self._arrivals: asyncio.Queue[tuple[Peer, Block]] = asyncio.Queue(DOWNLOAD_WINDOW)  # for the connector
        self._connecting = 0  # blocks the connector has taken from the queue and the chain not yet answered for
        self._stalls: Counter[int] = Counter()  # peer id -> timeouts in a row without a block served
        self._new_peer = asyncio.Event()  # a handshake completed: greet the peer now, not at the next tick
        manager.add_ready_listener(lambda _: self._new_peer.set())
        manager.register_handler("getheaders", self._on_getheaders)
        manager.register_handler("headers", self._on_headers)
        manager.register_handler("block", self._on_block)

    async def run(self) -> None:
        """The scheduler's ticks and the connector, which takes downloaded blocks to the chain."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._connect_arrivals(), name="p2p-sync-connect")
            while True:
                self._new_peer.clear()
                await self._tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_peer.wait(), TICK)

    def fill(self) -> Fills:
        """The download queue, the blocks in flight and the inventory known to each peer."""
        return {
            "blocks_wanted": Fill(len(self._wanted), MAX_WANTED),
            "blocks_in_flight": Fill(len(self._in_flight), DOWNLOAD_WINDOW),
            "known_inventory": self.known.fill(len(ready_peers(self.manager))),
        }

    def catching_up(self) -> bool:
        """Whether blocks that peers announced are still to download or connect: transactions in them (a job's
        escrow, say) are not in our chain yet, so waiting for one is no reason to give up."""
        return bool(self._wanted or self._in_flight or self._submitting or self._connecting)

    async def request_headers(self, peer: Peer, stop: bytes = NO_STOP) -> None:
        """Ask `peer` for the headers after our active chain (up to `stop`)."""
        locator = await self.chain.call(self.chain.chainstate.locator)
        peer.send(GetHeaders(tuple(locator), stop))

    def not_found(self, peer: Peer, block_hashes: list[bytes]) -> None:
        """`peer` cannot serve these blocks: ask someone else."""
        self._stalls.pop(peer.id, None)  # an answer, if not the one hoped for
        for block_hash in block_hashes:
            if self._in_flight.get(block_hash, (None,))[0] == peer.id:
                del self._in_flight[block_hash]
            self._wanted.get(block_hash, set()).discard(peer.id)
        self._schedule()

    async def _tick(self) -> None:
        peers = ready_peers(self.manager)
        ready_ids = {peer.id for peer in peers}
        tip_height = self.chain.chainstate.tip.height
        for peer in peers:
            if peer.id not in self._greeted:
                self._greeted.add(peer.id)
                peer.send(SendHeaders())
                if peer.best_height > tip_height:
                    await self.request_headers(peer)
        self._greeted &= ready_ids
        self.known.keep_only(ready_ids)
        if len(self._wanted) <= MAX_WANTED // 2:
            for peer in peers:
                if peer.id in self._more_headers:
                    peer.send(GetHeaders((self._more_headers.pop(peer.id),), NO_STOP))
        self._more_headers = {peer_id: last for peer_id, last in self._more_headers.items() if peer_id in ready_ids}
        now = time.monotonic()
        stalled = set()
        for block_hash, (peer_id, deadline) in list(self._in_flight.items()):
            if peer_id not in ready_ids or deadline < now:
                if peer_id in ready_ids:
                    log.info("block %s stalled at peer %d; asking another peer", hash_to_hex(block_hash), peer_id)
                    stalled.add(peer_id)
                del self._in_flight[block_hash]
                sources = self._wanted.get(block_hash, set())
                if sources - {peer_id}:
                    sources.discard(peer_id)
        for peer_id in stalled:
            self._stalls[peer_id] += 1
            if self._stalls[peer_id] >= MAX_STALLS:
                log.warning("peer %d served none of the blocks it announced %d times running; disconnecting",
                            peer_id, MAX_STALLS)
                self.manager.disconnect(peer_id)
                ready_ids.discard(peer_id)
        self._stalls = Counter({peer_id: n for peer_id, n in self._stalls.items() if peer_id in ready_ids})
        for block_hash, sources in list(self._wanted.items()):
            sources &= ready_ids
            if not sources:
                del self._wanted[block_hash]  # nobody left to ask; the next headers exchange finds it again
        self._schedule()

    def _schedule(self) -> None:
        """Fill the download window with wanted blocks, each from its least loaded ready source.

        Blocks that arrived and wait for the connector or the chain, or ahead of a missing parent in
        the orphan pool, count against the window, or one slow peer would let the others overflow the
        pool, and every evicted block would cost a fresh headers download and the block again. With
        nothing in flight the lowest wanted block is always asked for, so a lost parent cannot stall
        the sync behind a full pool.
        """
        waiting = len(self.chain.chainstate.orphans) + self._arrivals.qsize() + self._connecting
        free = max(DOWNLOAD_WINDOW - len(self._in_flight) - waiting, 0 if self._in_flight else 1)
        if free <= 0:
            return
        load = Counter(peer_id for peer_id, _ in self._in_flight.values())
        open_peers = {peer.id for peer in ready_peers(self.manager) if load[peer.id] < PER_PEER_WINDOW}
        requests: dict[int, list[bytes]] = {}
        deadline = time.monotonic() + self.block_timeout
        for block_hash, sources in self._wanted.items():
            if free == 0 or not open_peers:
                break  # nothing more to ask, or nobody to ask it of: the rest of the queue need not be walked
            if block_hash in self._in_flight:
                continue
            candidates = [peer_id for peer_id in sources if peer_id in open_peers]
            if not candidates:
                continue
            peer_id = min(candidates, key=load.__getitem__)
            load[peer_id] += 1
            if load[peer_id] >= PER_PEER_WINDOW:
                open_peers.discard(peer_id)
            free -= 1
            self._in_flight[block_hash] = (peer_id, deadline)
            requests.setdefault(peer_id, []).append(block_hash)
        for peer_id, hashes in requests.items():
            peer = self.manager.peer(peer_id)
            if peer is not None:
                peer.send(GetData(tuple(InvItem(InvType.BLOCK, h) for h in hashes)))

    async def _on_getheaders(self, peer: Peer, message: GetHeaders) -> None:
        headers = await self.chain.call(headers_after, self.chain.chainstate, message.locator, message.stop)
        peer.send(Headers(tuple(headers)))

    async def _on_headers(self, peer: Peer, message: Headers) -> None:
        if not message.headers:
            return
        try:
            headers = [BlockHeader.from_bytes(raw) for raw in message.headers]
        except ValueError as exc:
            raise ProtocolViolation(f"bad-payload: headers: {exc}") from None
        pow_limit = self.chain.chainstate.params.pow_limit
        for previous, header in zip([None, *headers], headers, strict=False):
            if previous is not None and header.prev_hash != previous.hash_bytes:
                raise ProtocolViolation("invalid-headers: not a chain")
            if not header.check_pow(pow_limit):
                raise ProtocolViolation(f"invalid-headers: {header.hash()} has insufficient proof of work")
        for header in headers:
            self.known.add(peer, header.hash_bytes)
        connects, missing = await self.chain.call(missing_blocks, self.chain.chainstate, headers)
        missing = [block_hash for block_hash in missing if block_hash not in self._submitting]  # here already
        if not connects and headers[0].prev_hash not in self._wanted:
            log.info("%r: headers from %s do not connect; asking from our tip", peer, hash_to_hex(headers[0].prev_hash))
            await self.request_headers(peer)  # an announcement past what we know: fill the gap first
            return
        room = MAX_WANTED - len(self._wanted)
        for block_hash in missing:
            if block_hash in self._wanted:
                self._wanted[block_hash].add(peer.id)
            elif room > 0:
                self._wanted[block_hash] = {peer.id}
                room -= 1
            else:  # the queue is full: continue from the header before this one once it has drained
                index = next(i for i, header in enumerate(headers) if header.hash_bytes == block_hash)
                log.info("%r: download queue full (%d blocks); its other headers wait", peer, len(self._wanted))
                self._more_headers[peer.id] = headers[index - 1].hash_bytes if index else headers[0].prev_hash
                break
        else:
            self._continue_headers(peer, headers)
        self._schedule()

    def _continue_headers(self, peer: Peer, headers: list[BlockHeader]) -> None:
        """A full headers message means the peer has more: ask now, or once the queue has drained."""
        if len(headers) == MAX_HEADERS:
            if len(self._wanted) < MAX_WANTED:
                peer.send(GetHeaders((headers[-1].hash_bytes,), NO_STOP))
            else:
                self._more_headers[peer.id] = headers[-1].hash_bytes  # _tick asks once the queue has drained

    async def _on_block(self, peer: Peer, message: BlockMessage) -> None:
        """Decode the block and queue it for the connector; the peer's next message is read meanwhile.

        A full queue holds the sender until the connector has taken what is queued, so however fast
        blocks come, no more than DOWNLOAD_WINDOW of them wait in memory.
        """
        try:
            block = Block.from_bytes(message.block)
        except ValueError as exc:
            raise ProtocolViolation(f"bad-payload: block: {exc}") from None
        block_hash = block.hash_bytes
        self.known.add(peer, block_hash)
        self._stalls.pop(peer.id, None)
        self._in_flight.pop(block_hash, None)
        self._wanted.pop(block_hash, None)
        self._submitting[block_hash] += 1
        await self._arrivals.put((peer, block))

    async def _connect_arrivals(self) -> None:
        """Hand every queued block to the chain in one call, then act on each outcome; forever."""
        while True:
            arrivals = [await self._arrivals.get()]
            while not self._arrivals.empty():
                arrivals.append(self._arrivals.get_nowait())
            self._connecting = len(arrivals)
            self._schedule()  # the room they left in the queue goes to the next blocks, which download meanwhile
            try:
                outcomes = await self.chain.submit_blocks([block for _, block in arrivals])
            except Exception:  # a bug or a storage failure of ours, not the peers'
                log.exception("connecting %d downloaded blocks failed", len(arrivals))
                outcomes = []
            finally:
                self._submitting -= Counter(block.hash_bytes for _, block in arrivals)
                self._connecting = 0
                self._schedule()
            for (peer, block), outcome in zip(arrivals, outcomes, strict=False):
                try:
                    await self._after_block(peer, block, outcome)
                except Exception:
                    log.exception("%r: handling block %s failed", peer, block.hash())

    async def _after_block(self, peer: Peer, block: Block, outcome: BlockResult | BlockRejected) -> None:
        """Punish a peer for an invalid block, look for an orphan's ancestors, keep the peer's height."""
        if isinstance(outcome, BlockRejected):
            if outcome.reason in BLAMELESS_BLOCK_REASONS:
                log.info("%r: block %s not accepted: %s", peer, block.hash(), outcome)
            else:
                self.manager.punish(peer, f"invalid-block: {outcome.reason}")
            return
        parent = block.header.prev_hash
        if (
            outcome.status == "orphan"
            and not peer.closed
            and parent not in self._wanted
            and parent not in self._in_flight
            and parent not in self._submitting  # arrived from another peer, queued behind this block
            and not await self.chain.call(has_block, self.chain.chainstate, parent)
        ):
            log.info("%r: block %s builds on unknown %s; asking for headers", peer, block.hash(), hash_to_hex(parent))
            await self.request_headers(peer)  # it builds on blocks we never heard of: learn them
        if outcome.connected:
            peer.best_height = max(peer.best_height, self.chain.chainstate.tip.height)
