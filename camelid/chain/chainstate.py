"""The chain state: stored blocks, the block index, the UTXO set, undo data, the txindex and the best tip.

Every change of the active chain is written as one LevelDB batch with sync=True
(coins, undo data, txindex, index statuses and the tip together), so a node killed
at any instant restarts on a consistent tip. `process_blocks` (initial download
hands it runs of blocks) writes the same batch per block but syncs once, at the
end of the run: LevelDB applies batches whole and in order, so a crash meanwhile
loses at most the run's last blocks, never half a block. A reorganisation is validated in
memory first: nothing is written until the new branch has connected past the old
tip's work, so a block that fails half-way through leaves the old tip untouched.

The best chain is the valid one with the most cumulative work; of two with equal
work the one seen first stays. Reorganisations deeper than params.max_reorg_depth
are refused.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from camelid.chain import layout
from camelid.chain.blockindex import BlockIndex, BlockIndexEntry, BlockStatus
from camelid.chain.checkqueue import CheckQueue
from camelid.chain.coins import Coin, CoinsView
from camelid.chain.difficulty import next_bits
from camelid.chain.errors import BlockRejected, ValidationError
from camelid.chain.orphans import OrphanPool
from camelid.chain.storage import KeyValueStore, LevelDBStore, StorageError, WriteBatch
from camelid.chain.undo import decode_undo, encode_undo
from camelid.chain.validation import (
    check_block,
    check_block_context,
    check_block_header_context,
    connect_block,
    disconnect_block,
)
from camelid.core.block import Block
from camelid.core.jobgame import GameReferee, GameRules
from camelid.core.params import ChainParams
from camelid.core.pow import work_from_bits
from camelid.core.serialize import hash_to_hex
from camelid.core.transaction import OutPoint, Transaction

log = logging.getLogger(__name__)

BlockStatusName = Literal["connected", "side-chain", "orphan", "duplicate"]


@dataclass
class BlockResult:
    """What processing one block did to the active chain.

    `disconnected` lists the blocks a reorganisation removed, old tip first;
    `connected` the blocks added, lowest first (it may include orphans the block unlocked).
    """

    status: BlockStatusName
    connected: list[Block] = field(default_factory=list)
    disconnected: list[Block] = field(default_factory=list)


class UtxoStats(NamedTuple):
    count: int
    total_amount: int
    hash: bytes  # sha256d over the serialized UTXO set in key order; equal sets give equal hashes


class _InvalidBlock(Exception):
    """A stored block failed while being connected."""

    def __init__(self, entry: BlockIndexEntry, error: ValidationError) -> None:
        super().__init__(str(error))
        self.entry = entry
        self.error = error


class ChainState:
    """Validates and stores blocks and keeps the UTXO set of the best valid chain.

    `referee` judges the moves of dispute games, without any model (the node passes
    camelid.compute.game_referee.ModelFreeReferee); without one every move fails closed.
    `script_threads` threads, this one included, verify a block's signatures (-par).
    """

    def __init__(
        self,
        store: KeyValueStore,
        params: ChainParams,
        orphans: OrphanPool | None = None,
        referee: GameReferee | None = None,
        script_threads: int = 1,
    ) -> None:
        self.params = params
        self.game_rules = GameRules(params.n_move, referee)
        self._checks = CheckQueue(script_threads)
        self.orphans = orphans if orphans is not None else OrphanPool()
        self._store = store
        self._index = BlockIndex()
        self._candidates: set[BlockIndexEntry] = set()  # entries that may beat the tip
        self._defer_sync = False  # inside process_blocks: one sync for the whole run ...
        self._unsynced = False  # ... owed once a chain change was written without it
        try:
            self._load()
        except BaseException:
            self._checks.close()
            raise

    @classmethod
    def open(
        cls, path: Path, params: ChainParams, referee: GameReferee | None = None, script_threads: int = 1
    ) -> ChainState:
        """Open (or create, with the genesis block) the chain state in directory `path`."""
        store = LevelDBStore(Path(path))
        try:
            return cls(store, params, referee=referee, script_threads=script_threads)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        self._checks.close()
        self._store.close()

    # Reads.

    @property
    def tip(self) -> BlockIndexEntry:
        return self._index.tip

    def get_entry(self, block_hash: bytes) -> BlockIndexEntry | None:
        return self._index.get(block_hash)

    def get_block(self, block_hash: bytes) -> Block | None:
        raw = self.get_block_bytes(block_hash)
        return Block.from_bytes(raw) if raw is not None else None

    def get_block_bytes(self, block_hash: bytes) -> bytes | None:
        """A stored block as serialised, for peers: no decoding to encode it again."""
        return self._store.get(layout.block_key(block_hash))

    def get_hash_at_height(self, height: int) -> bytes | None:
        entry = self._index.at_height(height)
        return entry.hash if entry is not None else None

    def is_in_active_chain(self, block_hash: bytes) -> bool:
        entry = self._index.get(block_hash)
        return entry is not None and self._index.is_active(entry)

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        raw = self._store.get(layout.coin_key(outpoint))
        return Coin.from_bytes(raw) if raw is not None else None

    def find_transaction(self, txid: bytes) -> tuple[Transaction, bytes] | None:
        """A transaction of the active chain and the hash of its block, through the txindex."""
        block_hash = self._store.get(layout.txindex_key(txid))
        block = self.get_block(block_hash) if block_hash is not None else None
        if block is None:
            return None
        return next(((tx, block_hash) for tx in block.transactions if tx.hash == txid), None)

    def next_bits(self, prev: BlockIndexEntry) -> int:
        """Bits required of a block whose parent is `prev`."""
        return next_bits(self.params, prev.height, prev.header.time, prev.header.bits)

    def median_time_past(self, entry: BlockIndexEntry) -> int:
        return self._index.median_time_past(entry)

    def _judged_at(self, entry: BlockIndexEntry) -> Callable[[int], int]:
        """height -> the median time past the block at that height below `entry`, on its chain, was judged by."""
        return lambda height: self._index.median_time_past(self._index.ancestor(entry, height - 1))

    def judged_at(self, height: int) -> int:
        """The median time past the active chain's block at `height` (up to the tip's + 1) is judged by."""
        return self._judged_at(self.tip)(height) if height <= self.tip.height else self.median_time_past(self.tip)

    def locator(self) -> list[bytes]:
        return self._index.locator()

    def utxo_set_stats(self) -> UtxoStats:
        """Count, total value and a hash of the whole UTXO set (one ordered scan)."""
        digest = hashlib.sha256()
        count = total = 0
        for key, raw in self._store.iterate(layout.COIN):
            digest.update(key[len(layout.COIN) :] + raw)
            count += 1
            total += Coin.from_bytes(raw).tx_out.value
        return UtxoStats(count, total, hashlib.sha256(digest.digest()).digest())

    # Block processing.

    def process_block(self, block: Block, now: int | None = None) -> BlockResult:
        """Validate, store and if it leads the most-work chain connect `block`; raises BlockRejected.

        `now` is the network-adjusted time for the 2-hour future limit (default: the clock).
        """
        now = int(time.time()) if now is None else now
        block_hash = block.hash_bytes
        known = self._index.get(block_hash)
        if known is not None:
            if known.status.failed:
                raise BlockRejected("duplicate-invalid", f"block {block.hash()} is known to be invalid")
            return BlockResult("duplicate")
        if block_hash in self.orphans:
            return BlockResult("duplicate")
        try:
            check_block(block, self.params)
        except ValidationError as exc:
            raise BlockRejected(exc.reason, exc.message) from None
        parent = self._index.get(block.header.prev_hash)
        if parent is None:
            self.orphans.add(block, now)
            return BlockResult("orphan")
        old_tip = self.tip
        in_hand = {block_hash: block}
        try:
            self._accept(block, parent, now, in_hand)
        except BlockRejected:
            self.orphans.pop_children(block_hash)  # they build on a block we refused
            raise
        self._connect_orphans(block_hash, now, in_hand)
        status: BlockStatusName = "connected" if self.is_in_active_chain(block_hash) else "side-chain"
        connected, disconnected = self._chain_change(old_tip, in_hand)
        return BlockResult(status, connected, disconnected)

    def process_blocks(self, blocks: list[Block], now: int | None = None) -> list[BlockResult | BlockRejected]:
        """`process_block` on each of `blocks` in order, a BlockRejected in place of each refused block's result.

        Each block's chain change is still its own atomic batch, so the results and the state are those of
        one call per block; only the fsyncs are shared: one, after the last block, instead of one per block.
        """
        results: list[BlockResult | BlockRejected] = []
        self._defer_sync = True
        try:
            for block in blocks:
                try:
                    results.append(self.process_block(block, now))
                except BlockRejected as rejected:
                    results.append(rejected)
        finally:
            self._defer_sync = False
            if self._unsynced:
                batch = WriteBatch()
                batch.put(layout.TIP, self.tip.hash)  # already written; a synced write makes the run's durable
                self._store.write(batch, sync=True)
                self._unsynced = False
        return results

    def _accept(self, block: Block, parent: BlockIndexEntry, now: int, in_hand: dict[bytes, Block]) -> None:
        """Contextual checks, store the block, then move to the best chain."""
        if parent.status.failed:
            raise BlockRejected("bad-prevblk", f"parent {hash_to_hex(parent.hash)} is invalid")
        fork = self._index.fork_point(self.tip, parent)
        if self.tip.height - fork.height > self.params.max_reorg_depth:
            raise BlockRejected(
                "reorg-too-deep",
                f"forks {self.tip.height - fork.height} blocks below the tip, limit {self.params.max_reorg_depth}",
            )
        height = parent.height + 1
        median_time_past = self._index.median_time_past(parent)
        try:
            check_block_header_context(block.header, self.next_bits(parent), median_time_past, now)
            check_block_context(block, height, median_time_past)
        except ValidationError as exc:
            raise BlockRejected(exc.reason, exc.message) from None
        entry = BlockIndexEntry(block.header, height, parent.chainwork + work_from_bits(block.header.bits), prev=parent)
        batch = WriteBatch()
        batch.put(layout.block_key(entry.hash), block.to_bytes())
        batch.put(layout.index_key(entry.hash), entry.to_bytes())
        self._store.write(batch)  # made durable by the next synced write, which LevelDB orders after it
        self._index.add(entry)
        if entry.chainwork > self.tip.chainwork:
            self._candidates.add(entry)
        failures = self._activate_best_chain(in_hand)
        if entry in failures:
            raise failures[entry]
        if entry.status.failed:
            causes = "; ".join(str(error) for error in failures.values())
            raise BlockRejected("bad-prevblk", f"an ancestor of {block.hash()} is invalid: {causes}")

    def _connect_orphans(self, parent_hash: bytes, now: int, in_hand: dict[bytes, Block]) -> None:
        """Accept orphans that were waiting for `parent_hash`, and theirs in turn."""
        waiting = deque([parent_hash])
        while waiting:
            parent_hash = waiting.popleft()
            for child in self.orphans.pop_children(parent_hash):
                parent = self._index.get(parent_hash)
                assert parent is not None
                in_hand[child.hash_bytes] = child
                try:
                    self._accept(child, parent, now, in_hand)
                except BlockRejected as exc:
                    log.info("orphan block %s rejected: %s", child.hash(), exc)
                    continue
                waiting.append(child.hash_bytes)

    def _chain_change(self, old_tip: BlockIndexEntry, in_hand: dict[bytes, Block]) -> tuple[list[Block], list[Block]]:
        """(connected lowest first, disconnected old tip first) between `old_tip` and the current tip."""
        fork = self._index.fork_point(old_tip, self.tip)
        disconnected = []
        walk = old_tip
        while walk is not fork:
            disconnected.append(self._block_for(walk, in_hand))
            assert walk.prev is not None
            walk = walk.prev
        connected = [
            self._block_for(self._index.ancestor(self.tip, height), in_hand)
            for height in range(fork.height + 1, self.tip.height + 1)
        ]
        return connected, disconnected

    def _block_for(self, entry: BlockIndexEntry, in_hand: dict[bytes, Block]) -> Block:
        block = in_hand.get(entry.hash) or self.get_block(entry.hash)
        if block is None:
            raise StorageError(f"block {hash_to_hex(entry.hash)} is indexed but not stored")
        return block

    # Chain selection.

    def _activate_best_chain(self, in_hand: dict[bytes, Block] | None = None) -> dict[BlockIndexEntry, BlockRejected]:
        """Move to the most-work valid chain; returns the blocks found invalid on the way and why."""
        failures: dict[BlockIndexEntry, BlockRejected] = {}
        while (target := self._best_candidate()) is not None:
            try:
                self._switch_to(target, in_hand or {})
            except _InvalidBlock as bad:
                log.warning("block %s at height %d is invalid: %s", hash_to_hex(bad.entry.hash), bad.entry.height, bad)
                self._mark_failed(bad.entry)
                failures[bad.entry] = BlockRejected(bad.error.reason, bad.error.message)
        self._candidates = {e for e in self._candidates if e.chainwork > self.tip.chainwork}
        return failures

    def _best_candidate(self) -> BlockIndexEntry | None:
        """The candidate with the most work (earliest seen on ties) that beats the tip within the reorg limit."""
        tip = self.tip
        best = None
        for entry in list(self._candidates):
            if entry.status.failed or entry.chainwork <= tip.chainwork:
                self._candidates.discard(entry)
                continue
            depth = tip.height - self._index.fork_point(tip, entry).height
            if depth > self.params.max_reorg_depth:
                log.warning("not reorganising %d blocks to %s: limit is %d", depth, hash_to_hex(entry.hash),
                            self.params.max_reorg_depth)
                self._candidates.discard(entry)
                continue
            if best is None or (entry.chainwork, -entry.sequence) > (best.chainwork, -best.sequence):
                best = entry
        return best

    def _switch_to(self, target: BlockIndexEntry, in_hand: dict[bytes, Block]) -> None:
        """Disconnect to the fork point and connect up to `target`, committing only states that beat the old tip.

        The disconnects and the first connects share one batch, written once the new
        branch has more work than the old tip; after that every block is its own batch.
        """
        old_work = self.tip.chainwork
        fork = self._index.fork_point(self.tip, target)
        view, batch = CoinsView(self._store), WriteBatch()
        walk = self.tip
        while walk is not fork:
            self._stage_disconnect(walk, view, batch, in_hand)
            assert walk.prev is not None
            walk = walk.prev
        branch = []
        walk = target
        while walk is not fork:
            branch.append(walk)
            assert walk.prev is not None
            walk = walk.prev
        newly_valid: list[BlockIndexEntry] = []
        for entry in reversed(branch):
            block = self._block_for(entry, in_hand)
            try:
                assert entry.prev is not None  # the genesis block is never connected here
                median_time_past = self._index.median_time_past(entry.prev)
                spent = connect_block(
                    block, entry.height, view, self.params, median_time_past, self._judged_at(entry),
                    self.game_rules, self._checks,
                )
            except ValidationError as exc:
                for pending in newly_valid:
                    pending.status &= ~BlockStatus.VALID
                raise _InvalidBlock(entry, exc) from None
            batch.put(layout.undo_key(entry.hash), encode_undo(spent))
            for tx in block.transactions:
                batch.put(layout.txindex_key(tx.hash), entry.hash)
            if not entry.status & BlockStatus.VALID:
                entry.status |= BlockStatus.VALID
                newly_valid.append(entry)
                batch.put(layout.index_key(entry.hash), entry.to_bytes())
            if entry.chainwork > old_work:
                batch.put(layout.TIP, entry.hash)
                view.write_to(batch)
                self._store.write(batch, sync=not self._defer_sync)
                self._unsynced |= self._defer_sync
                self._index.set_tip(entry)
                view, batch, newly_valid = CoinsView(self._store), WriteBatch(), []

    def _stage_disconnect(
        self, entry: BlockIndexEntry, view: CoinsView, batch: WriteBatch, in_hand: dict[bytes, Block]
    ) -> None:
        block = self._block_for(entry, in_hand)
        raw_undo = self._store.get(layout.undo_key(entry.hash))
        if raw_undo is None:
            raise StorageError(f"no undo data for connected block {hash_to_hex(entry.hash)}; run with -reindex")
        disconnect_block(block, decode_undo(raw_undo), view)
        for tx in block.transactions:
            batch.delete(layout.txindex_key(tx.hash))
        batch.delete(layout.undo_key(entry.hash))

    def _mark_failed(self, bad: BlockIndexEntry) -> None:
        """Mark `bad` invalid and its descendants failed-child; its parent may now be the best candidate."""
        children: dict[bytes, list[BlockIndexEntry]] = {}
        for entry in self._index:
            children.setdefault(entry.header.prev_hash, []).append(entry)
        bad.status |= BlockStatus.FAILED
        batch = WriteBatch()
        batch.put(layout.index_key(bad.hash), bad.to_bytes())
        below = deque(children.get(bad.hash, []))
        while below:
            entry = below.popleft()
            entry.status |= BlockStatus.FAILED_CHILD
            batch.put(layout.index_key(entry.hash), entry.to_bytes())
            below.extend(children.get(entry.hash, []))
        self._store.write(batch, sync=True)
        if bad.prev is not None and not bad.prev.status.failed and bad.prev.chainwork > self.tip.chainwork:
            self._candidates.add(bad.prev)

    # Startup and maintenance.

    def _load(self) -> None:
        stored_network = self._store.get(layout.NETWORK)
        if stored_network is None:
            self._write_genesis()
        elif stored_network != self.params.name.encode():
            raise StorageError(
                f"this datadir holds the {stored_network.decode(errors='replace')} chain, not {self.params.name}"
            )
        for _, raw in self._store.iterate(layout.INDEX):
            self._index.add(BlockIndexEntry.from_bytes(raw))
        self._index.link_parents()
        tip_hash = self._store.get(layout.TIP)
        tip = self._index.get(tip_hash) if tip_hash is not None else None
        if tip is None:
            raise StorageError("the chain state has no valid tip; restart with -reindex")
        self._index.set_tip(tip)
        if self.get_hash_at_height(0) != self.params.genesis_hash:
            raise StorageError(f"this datadir's genesis block is not {self.params.name}'s")
        self._candidates = {e for e in self._leaves() if e.chainwork > tip.chainwork and not e.status.failed}
        self._activate_best_chain()  # finish what a crash interrupted

    def _write_genesis(self) -> None:
        """A new datadir: store the genesis block as the tip. Its coinbase never enters the UTXO set."""
        genesis = self.params.genesis
        entry = BlockIndexEntry(genesis.header, 0, work_from_bits(genesis.header.bits), BlockStatus.VALID)
        batch = WriteBatch()
        batch.put(layout.NETWORK, self.params.name.encode())
        batch.put(layout.block_key(entry.hash), genesis.to_bytes())
        batch.put(layout.index_key(entry.hash), entry.to_bytes())
        batch.put(layout.TIP, entry.hash)
        self._store.write(batch, sync=True)

    def _leaves(self) -> list[BlockIndexEntry]:
        parents = {entry.header.prev_hash for entry in self._index}
        return [entry for entry in self._index if entry.hash not in parents]

    def reindex(self) -> None:
        """Rebuild the UTXO set, undo data, txindex and tip from the stored blocks, revalidating each."""
        genesis = self._index.at_height(0)
        assert genesis is not None
        batch = WriteBatch()
        for prefix in (layout.COIN, layout.UNDO, layout.TXINDEX):
            for key, _ in self._store.iterate(prefix):
                batch.delete(key)
        for entry in self._index:
            if entry is not genesis:
                entry.status = BlockStatus.NONE
                batch.put(layout.index_key(entry.hash), entry.to_bytes())
        batch.put(layout.TIP, genesis.hash)
        self._store.write(batch, sync=True)
        self._index.set_tip(genesis)
        self._candidates = {e for e in self._leaves() if e is not genesis}
        self._activate_best_chain()
