"""Transaction and block relay: inv/getdata announcements, and serving what peers ask for.

New mempool transactions are announced with inv(TX) to every peer not known to
have them; a new tip goes out as `headers` to peers that sent `sendheaders` and
as inv(BLOCK) to the rest. An inv for a transaction we lack is answered with
getdata; an inv for an unknown block starts a headers exchange (camelid.p2p.sync
fetches the blocks). getdata is answered with the objects or `notfound`.

A getdata is served lazily: objects are read on the chain thread only once the
peer has taken the previous ones (its unsent data is below the send buffer's high
water mark), and one read takes as many as fit under that mark, so one request
costs at most one object of memory beyond it, however much it names, and a
download window of small blocks costs one chain-thread trip, not one per block.
A getdata of more than MAX_GETDATA_ITEMS items, or naming an item twice, is a
ProtocolViolation: no honest node sends one (ours split and deduplicate what
they ask for).

Misbehaviour: a transaction that breaks a consensus rule (bad structure, a
failing script, outputs above inputs) is a ProtocolViolation; one refused by
policy, already known, or spending outputs we have not seen yet is not -- an
honest peer sends those all the time. A refuted fraud proof ("bad-job-proof",
"bad-job-proof-delivery") and an invalid dispute-game move ("bad-job-game-move")
are misbehaviour too: none needs a model (the game's referee is exact and
model-free), so every node decides them alike from the transaction and the
outputs it spends.

A transaction whose parents we lack is held as an orphan (camelid.p2p.tx_orphans),
its missing parents are asked of its sender, and `run` submits it again once a
parent is accepted or a new tip arrives; a child of a rejected parent is rejected.
"""

from __future__ import annotations

import asyncio
import logging

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import TxRejected
from camelid.chain.mempool import Mempool
from camelid.core.fill import Fill, Fills
from camelid.core.transaction import Transaction
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.limits import RecentSet
from camelid.p2p.manager import PeerManager
from camelid.p2p.messages import (
    BlockMessage,
    GetData,
    Headers,
    Inv,
    InvItem,
    InvType,
    NotFound,
    SendHeaders,
    TxMessage,
)
from camelid.p2p.peer import SEND_HIGH_WATER, Peer
from camelid.p2p.sync import BlockSync, ChainBackend, ready_peers
from camelid.p2p.tx_orphans import TxOrphanage, parents

log = logging.getLogger(__name__)

MAX_GETDATA_ITEMS = 1000  # items one getdata may name; more than a download window or a mempool batch
RECENT_REJECTS = 50_000  # transaction ids refused lately, not requested again
# Transaction rejections that do not show the sender misbehaving: timing, our pool's state, or our policy.
BLAMELESS_TX_REASONS = frozenset(
    {"bad-txns-inputs-missingorspent", "bad-txns-nonfinal", "bad-txns-premature-spend-of-coinbase"}
)
MISSING_INPUTS = "bad-txns-inputs-missingorspent"


def is_misbehaviour(rejection: TxRejected) -> bool:
    """Whether a rejected transaction breaks consensus whatever the chain state (as Bitcoin's TX_CONSENSUS)."""
    reason = rejection.reason
    if reason.startswith(("mandatory-script-verify-flag-failed", "bad-job-proof", "bad-job-game-move")):
        return True
    return reason.startswith("bad-txns-") and reason not in BLAMELESS_TX_REASONS


def object_for(chainstate: ChainState, mempool: Mempool, item: InvItem) -> bytes | None:
    """Chain thread: the serialised transaction or block `item` names, or None if we lack it."""
    if item.type is InvType.TX:
        entry = mempool.get(item.hash)
        return entry.tx.to_bytes() if entry is not None else None
    if item.type is InvType.BLOCK:
        return chainstate.get_block_bytes(item.hash)
    return None


def objects_for(chainstate: ChainState, mempool: Mempool, items: list[InvItem], budget: int) -> list[bytes | None]:
    """Chain thread: `object_for` each of a prefix of `items`, stopping once the answers add up to `budget` bytes."""
    answers: list[bytes | None] = []
    size = 0
    for item in items:
        answer = object_for(chainstate, mempool, item)
        answers.append(answer)
        size += len(answer) if answer is not None else 0
        if size >= budget:
            break
    return answers


def check_getdata(getdata: GetData) -> None:
    """ProtocolViolation for a getdata no honest node sends: too many items, or one item twice."""
    if len(getdata.items) > MAX_GETDATA_ITEMS:
        raise ProtocolViolation(f"getdata-too-large: {len(getdata.items)} items, at most {MAX_GETDATA_ITEMS}")
    if len(set(getdata.items)) != len(getdata.items):
        raise ProtocolViolation("getdata-duplicate: an item is named twice")


def getdata_batches(inv_type: InvType, hashes: list[bytes]) -> list[GetData]:
    """getdata messages asking for `hashes` (duplicates dropped), each within MAX_GETDATA_ITEMS."""
    unique = list(dict.fromkeys(hashes))
    return [
        GetData(tuple(InvItem(inv_type, h) for h in unique[start : start + MAX_GETDATA_ITEMS]))
        for start in range(0, len(unique), MAX_GETDATA_ITEMS)
    ]


def unknown_transactions(mempool: Mempool, txids: list[bytes]) -> list[bytes]:
    """Chain thread: the transaction ids not in the mempool."""
    return [txid for txid in txids if txid not in mempool]


def unknown_blocks(chainstate: ChainState, hashes: list[bytes]) -> list[bytes]:
    """Chain thread: the block hashes neither in our index nor waiting as orphans."""
    return [h for h in hashes if chainstate.get_entry(h) is None and h not in chainstate.orphans]


class Relay:
    """Announces our new transactions and tip, and answers inv/getdata/tx from peers."""

    def __init__(self, manager: PeerManager, chain: ChainBackend, sync: BlockSync) -> None:
        self.manager = manager
        self.chain = chain
        self.sync = sync
        self._known = sync.known
        self._wants_headers: set[int] = set()  # peers that sent sendheaders
        self._rejected = RecentSet(RECENT_REJECTS)
        self.orphans = TxOrphanage()
        self._adoptable: asyncio.Queue[list[bytes] | None] = asyncio.Queue()  # parents accepted; None: a new tip
        for command, handler in (
            ("inv", self._on_inv),
            ("getdata", self._on_getdata),
            ("notfound", self._on_notfound),
            ("tx", self._on_tx),
            ("sendheaders", self._on_sendheaders),
        ):
            manager.register_handler(command, handler)
        manager.add_gone_listener(lambda peer: self.orphans.drop_peer(peer.id))

    def fill(self) -> Fills:
        """Transactions refused lately, and the orphan pool."""
        return {
            "recently_rejected_txs": Fill(len(self._rejected), self._rejected.capacity),
            "orphan_txs": self.orphans.fill(),
        }

    def announce_transaction(self, txid: bytes) -> int:
        """inv(TX) to every peer not known to have `txid`; returns how many were told."""
        told = 0
        for peer in self._peers():
            if self._known.add(peer, txid):
                peer.send(Inv((InvItem(InvType.TX, txid),)))
                told += 1
        if self.orphans.children_of([txid]):
            self._adoptable.put_nowait([txid])
        return told

    async def announce_block(self, block_hash: bytes) -> None:
        """Tell every peer about our new tip: headers to those that asked for them, else inv(BLOCK)."""
        self._rejected = RecentSet(RECENT_REJECTS)  # as Bitcoin: a new tip may make a refused transaction valid
        if len(self.orphans):
            self._adoptable.put_nowait(None)  # the block may hold their parents
        entry = await self.chain.call(self.chain.chainstate.get_entry, block_hash)
        if entry is None:
            return
        header = entry.header.to_bytes()
        for peer in self._peers():
            if not self._known.add(peer, block_hash):
                continue  # it sent us the block, or announced it
            if peer.id in self._wants_headers:
                peer.send(Headers((header,)))
            else:
                peer.send(Inv((InvItem(InvType.BLOCK, block_hash),)))

    def _peers(self) -> list[Peer]:
        peers = ready_peers(self.manager)
        self._wants_headers &= {peer.id for peer in peers}
        return peers

    async def _on_inv(self, peer: Peer, inv: Inv) -> None:
        for item in inv.items:
            self._known.add(peer, item.hash)
        txids = [item.hash for item in inv.items if item.type is InvType.TX and item.hash not in self._rejected]
        blocks = [item.hash for item in inv.items if item.type is InvType.BLOCK]
        if txids:
            txids = await self.chain.call(unknown_transactions, self.chain.mempool, txids)
            txids = [txid for txid in txids if txid not in self.orphans]
        for request in getdata_batches(InvType.TX, txids):
            peer.send(request)
        if blocks and await self.chain.call(unknown_blocks, self.chain.chainstate, blocks):
            await self.sync.request_headers(peer)

    async def _on_getdata(self, peer: Peer, getdata: GetData) -> None:
        check_getdata(getdata)
        missing = []
        items = list(getdata.items)
        while items:
            await peer.drain()  # the peer takes what it was sent before we read the next objects
            if peer.closed:
                return
            budget = max(SEND_HIGH_WATER - peer.unsent, 1)
            answers = await self.chain.call(objects_for, self.chain.chainstate, self.chain.mempool, items, budget)
            for item, answer in zip(items, answers, strict=False):
                if answer is None:
                    missing.append(item)
                    continue
                self._known.add(peer, item.hash)
                peer.send(TxMessage(answer) if item.type is InvType.TX else BlockMessage(answer))
            del items[: len(answers)]
        if missing:
            peer.send(NotFound(tuple(missing)))

    async def _on_notfound(self, peer: Peer, notfound: NotFound) -> None:
        self.sync.not_found(peer, [item.hash for item in notfound.items if item.type is InvType.BLOCK])

    async def _on_sendheaders(self, peer: Peer, _: SendHeaders) -> None:
        self._wants_headers.add(peer.id)

    async def _on_tx(self, peer: Peer, message: TxMessage) -> None:
        try:
            tx = Transaction.from_bytes(message.tx)
        except ValueError as exc:
            raise ProtocolViolation(f"bad-payload: tx: {exc}") from None
        self._known.add(peer, tx.hash)
        await self._submit(peer, tx)

    async def _submit(self, peer: Peer, tx: Transaction) -> str | None:
        """Submit `peer`'s transaction `tx`; ProtocolViolation if it breaks consensus, an orphan if it lacks parents.
        Returns why it was refused, None if it was accepted."""
        try:
            await self.chain.submit_transaction(tx)
        except TxRejected as exc:
            if is_misbehaviour(exc):
                raise ProtocolViolation(f"invalid-tx: {exc.reason}") from None
            if exc.reason == MISSING_INPUTS:
                await self._hold_orphan(peer, tx)
            else:
                self._rejected.add(tx.hash)  # anything but missing parents would fail again
            log.debug("%r: transaction %s not accepted: %s", peer, tx.txid(), exc)
            return exc.reason
        return None

    async def _hold_orphan(self, peer: Peer, tx: Transaction) -> None:
        """Keep `tx` until its parents arrive, and ask `peer`, who relayed it and so must have them, for those we lack
        (once: an orphan tried again keeps its place and its age)."""
        wanted = parents(tx)
        if any(parent in self._rejected for parent in wanted):
            self._rejected.add(tx.hash)  # its parent will not be accepted, so neither will it
            return
        if not self.orphans.add(tx, peer.id):
            return
        missing = await self.chain.call(unknown_transactions, self.chain.mempool, sorted(wanted))
        for request in getdata_batches(InvType.TX, [txid for txid in missing if txid not in self.orphans]):
            peer.send(request)

    async def run(self) -> None:
        """For the node's life: submit orphans again once a parent is accepted, or every orphan at a new tip."""
        while True:
            accepted = await self._adoptable.get()
            self.orphans.expire()
            orphans = self.orphans.all() if accepted is None else self.orphans.children_of(accepted)
            for orphan in orphans:
                txid = orphan.tx.hash
                if txid not in self.orphans:
                    continue  # tried meanwhile, as the child of another parent
                peer = self.manager.peer(orphan.peer_id)
                if peer is None or peer.closed:
                    self.orphans.remove(txid)  # its sender left: nobody to ask for the parents it still lacks
                    continue
                try:
                    reason = await self._submit(peer, orphan.tx)
                except ProtocolViolation as violation:
                    self.orphans.remove(txid)
                    self.manager.punish(peer, violation.reason)
                    continue
                if reason != MISSING_INPUTS:
                    self.orphans.remove(txid)
