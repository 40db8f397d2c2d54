"""The chain service: sole owner of the ChainState and the Mempool.

Everything that touches them -- block validation, mempool acceptance, template
building, and the reads RPC handlers make -- runs on one dedicated worker thread,
in submission order. That keeps CPU-heavy validation off the event loop, gives a
single writer (LevelDB batches never interleave) and lets readers see a
consistent tip without locks inside the chain code.

After each accepted block the service updates the mempool and publishes, in
order: BlockDisconnected for each block a reorganisation removed, BlockConnected
for each block added, then one TipChanged. Other services (RPC, the miner) call:

    await chain.call(fn, *args)                 # any read/write on the chain thread
    await chain.submit_block(block)             # -> BlockResult; raises BlockRejected
    await chain.submit_blocks(blocks)           # -> [BlockResult | BlockRejected], one chain-thread call
    await chain.submit_transaction(tx)          # -> mempool entry; raises TxRejected
    await chain.block_template(coinbase_script, extra_nonce)  # -> Block to grind
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from camelid.chain import mempool_file
from camelid.chain.chainstate import BlockResult, ChainState
from camelid.chain.errors import BlockRejected, TxRejected
from camelid.chain.mempool import Mempool
from camelid.chain.mempool_file import MempoolFileError, SavedTx
from camelid.chain.template import build_block_template
from camelid.compute.game_referee import ModelFreeReferee
from camelid.core.block import Block
from camelid.core.fill import Fill, Fills
from camelid.core.params import ChainParams
from camelid.core.serialize import hash_to_hex
from camelid.core.transaction import Transaction
from camelid.node.bus import EventBus
from camelid.node.events import BlockConnected, BlockDisconnected, TipChanged, TxAccepted

log = logging.getLogger(__name__)

T = TypeVar("T")
_Heights = list[tuple[Block, int]]


class ChainService:
    """Serialises all chain work on one thread and turns chain changes into bus events."""

    def __init__(self, chainstate: ChainState, mempool: Mempool, bus: EventBus, executor: ThreadPoolExecutor) -> None:
        self.chainstate = chainstate
        self.mempool = mempool
        self.bus = bus
        self._executor = executor
        self._submit_lock = asyncio.Lock()  # one block/tx at a time, so events leave in chain order
        self._mempool_restored = False  # a mempool saved before its restore ended would lose the rest of the file

    @classmethod
    async def open(
        cls,
        path: Path,
        params: ChainParams,
        bus: EventBus,
        *,
        mempool_bytes: int,
        reindex: bool = False,
        script_threads: int | None = None,
    ) -> ChainService:
        """Open (and with `reindex`, rebuild) the chain state at `path` on a fresh chain thread.

        `script_threads` threads, the chain thread included, verify block signatures (default: one per core).
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain")
        loop = asyncio.get_running_loop()
        threads = script_threads if script_threads is not None else os.cpu_count() or 1
        try:
            chainstate = await loop.run_in_executor(
                executor,
                functools.partial(ChainState.open, path, params, referee=ModelFreeReferee(), script_threads=threads),
            )
            if reindex:
                log.info("reindexing the chain state from stored blocks")
                await loop.run_in_executor(executor, chainstate.reindex)
            mempool = Mempool(chainstate, mempool_bytes)
        except BaseException:
            executor.shutdown(wait=True)
            raise
        tip = chainstate.tip
        log.info("chain state loaded: tip %s at height %d", hash_to_hex(tip.hash), tip.height)
        return cls(chainstate, mempool, bus, executor)

    @property
    def params(self) -> ChainParams:
        return self.chainstate.params

    @property
    def tip_hash(self) -> bytes:
        """Hash of the active tip; safe on the event loop because the chain swaps its tip atomically."""
        return self.chainstate.tip.hash

    async def fill(self) -> Fills:
        """The mempool (bytes as it counts them against its cap) and the orphan blocks, read on the chain thread."""

        def read() -> Fills:
            mempool, orphans = self.mempool, self.chainstate.orphans
            return {
                "mempool": Fill(len(mempool), None, mempool.usage, mempool.max_bytes),
                "orphan_blocks": Fill(len(orphans), orphans.max_count),
            }

        return await self.call(read)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the chain thread and return its result (exceptions propagate)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit_block(self, block: Block) -> BlockResult:
        """Validate and store `block`; publish the resulting chain events. Raises BlockRejected."""
        (result,) = await self.submit_blocks([block])
        if isinstance(result, BlockRejected):
            raise result
        return result

    async def submit_blocks(self, blocks: list[Block]) -> list[BlockResult | BlockRejected]:
        """Validate and store `blocks` in order in one chain-thread call (one fsync); publish the chain events.

        Each block's outcome is what `submit_block` would have given, a BlockRejected in place of a refused one.
        """
        async with self._submit_lock:
            outcomes = await self.call(self._process_blocks, blocks)
            tip = None
            for _, disconnected, connected in outcomes:
                for blk, height in disconnected:
                    await self.bus.publish(BlockDisconnected(blk, height))
                for blk, height in connected:
                    await self.bus.publish(BlockConnected(blk, height))
                    tip = (blk, height)
            if tip is not None:
                log.info("new tip %s at height %d (%d txs)", tip[0].hash(), tip[1], len(tip[0].transactions))
                await self.bus.publish(TipChanged(tip[0].hash_bytes, tip[1]))
            return [result for result, _, _ in outcomes]

    def _process_blocks(self, blocks: list[Block]) -> list[tuple[BlockResult | BlockRejected, _Heights, _Heights]]:
        """Chain thread: connect the blocks and bring the mempool in line with each new tip."""
        outcomes: list[tuple[BlockResult | BlockRejected, _Heights, _Heights]] = []
        for result in self.chainstate.process_blocks(blocks):
            if isinstance(result, BlockRejected):
                outcomes.append((result, [], []))
                continue
            for blk in result.connected:
                self.mempool.remove_for_block(blk)
            if result.disconnected:
                self.mempool.add_disconnected(result.disconnected)
            outcomes.append((result, self._with_heights(result.disconnected), self._with_heights(result.connected)))
        return outcomes

    def _with_heights(self, blocks: list[Block]) -> list[tuple[Block, int]]:
        return [(blk, self.chainstate.get_entry(blk.hash_bytes).height) for blk in blocks]

    async def submit_transaction(self, tx: Transaction, entered: int | None = None) -> Any:
        """Add `tx` to the mempool and publish TxAccepted. Raises TxRejected. `entered`: the entry's time
        (default now). Nothing here runs a model: a dispute game's moves are judged by the model-free referee."""
        async with self._submit_lock:
            entry = await self.call(self.mempool.accept, tx, entered)
        await self.bus.publish(TxAccepted(tx))
        return entry

    async def restore_mempool(self, path: Path) -> None:
        """Submit again the transactions saved at `path` by `save_mempool` at the last shutdown, each validated
        as if it had just arrived (one mined or double-spent meanwhile is left out). An unreadable file is
        logged, renamed to `<name>.bad` for the operator, and the node goes on with what it has."""
        try:
            saved = await asyncio.to_thread(mempool_file.load, path)
        except MempoolFileError as exc:
            bad = path.with_name(path.name + ".bad")
            await asyncio.to_thread(path.replace, bad)
            log.error("%s is not a mempool this node can read (%s); moved to %s, the mempool starts empty", path,
                      exc, bad.name)
            saved = []
        accepted = 0
        for entry in saved:
            try:
                await self.submit_transaction(entry.tx, entered=entry.time)
                accepted += 1
            except TxRejected as exc:
                log.debug("saved transaction %s not restored: %s", entry.tx.txid(), exc)
        self._mempool_restored = True
        if saved:
            log.info("mempool restored from %s: %d of %d transactions accepted", path.name, accepted, len(saved))

    async def save_mempool(self, path: Path) -> None:
        """Write the mempool to `path` for `restore_mempool` (at shutdown); not before the restore has ended."""
        if not self._mempool_restored:
            log.info("mempool not saved: it was still being restored from %s", path.name)
            return
        saved = await self.call(lambda: [SavedTx(entry.tx, entry.time) for entry in self.mempool.entries()])
        await asyncio.to_thread(mempool_file.save, path, saved)
        log.info("mempool saved: %d transactions to %s", len(saved), path.name)

    async def block_template(self, coinbase_script: bytes, extra_nonce: int = 0) -> Block:
        """An unsolved block on the current tip paying `coinbase_script`, with mempool transactions."""
        return await self.call(
            build_block_template, self.chainstate, self.mempool, coinbase_script, extra_nonce, int(time.time())
        )

    async def close(self) -> None:
        """Flush and close the chain state, then stop the chain thread (waits for work in progress)."""
        try:
            await self.call(self.chainstate.close)
        finally:
            self._executor.shutdown(wait=True)
        log.info("chain state closed")
