"""The miner: grinds block templates on the current tip in worker processes.

The event loop never hashes. It asks the chain for a template, cuts the 32-bit
nonce space into jobs of `chunk` nonces and keeps one job per worker process in
flight (camelid.node.mining_worker runs them); a job's result arrives as an
asyncio future. When the nonce space of a template is used up, or the template
is TEMPLATE_REFRESH_S old, the next one is requested with the extra nonce one
higher: a new coinbase and merkle root, the current time, and whatever the
mempool gained meanwhile.

Stopping work is one shared integer, the epoch: every job carries the epoch it
was started under and its worker gives up at the next batch (about 10 ms) once
the miner has moved the epoch on. The miner does that on TipChanged for a tip
other than its template's parent, when it finds a block, and on shutdown. A
solved block whose parent is no longer the tip is dropped rather than submitted.

The worker pool starts on first use; the end of run() stops it, and so does
close() after generate() calls. Workers start by "forkserver" (or "spawn" where
that is missing), never "fork": the daemon runs threads, and forking a threaded
process can copy a held lock into the child. As in any multiprocessing program,
the script that starts the node must guard its entry point with
`if __name__ == "__main__"`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from camelid.chain.errors import BlockRejected
from camelid.core.block import Block, BlockHeader
from camelid.core.transaction import Transaction
from camelid.node.bus import EventBus, Subscription
from camelid.node.events import TipChanged
from camelid.node.mining_worker import NONCE_LIMIT, PREFIX_SIZE, init_worker, search_range

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 1 << 18  # nonces per job: about 0.15 s on one core, so results and hashrate samples flow steadily
TEMPLATE_REFRESH_S = 30.0  # rebuild the template this often, for a fresh header time and new mempool transactions
HASHRATE_WINDOW_S = 60.0


class MiningChain(Protocol):
    """What the miner needs from the chain service."""

    @property
    def tip_hash(self) -> bytes:
        """Hash of the active chain's tip, internal byte order."""
        ...

    async def block_template(self, coinbase_script: bytes, extra_nonce: int) -> Block:
        """An unsolved block (nonce 0) on the tip, its coinbase paying `coinbase_script`."""
        ...

    async def submit_block(self, block: Block) -> object:
        """Validate and store a solved block; raises BlockRejected when it breaks a rule."""
        ...


class HashrateMeter:
    """Hashes per second over the last `window` seconds, from counts reported as jobs finish."""

    def __init__(self, window: float = HASHRATE_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._since: float | None = None  # when the current stretch of hashing began

    def record(self, hashes: int) -> None:
        now = self._clock()
        self._forget_before(now - self._window)
        if not self._samples and (self._since is None or now - self._since > self._window):
            self._since = now  # after an idle spell, average over the new stretch only
        self._samples.append((now, hashes))

    @property
    def rate(self) -> float:
        now = self._clock()
        self._forget_before(now - self._window)
        if not self._samples or self._since is None:
            return 0.0
        elapsed = min(self._window, now - self._since)
        total = sum(hashes for _, hashes in self._samples)
        return total / elapsed if elapsed > 0 else 0.0

    def _forget_before(self, cutoff: float) -> None:
        while self._samples and self._samples[0][0] < cutoff:
            self._samples.popleft()


@dataclass(frozen=True)
class _Job:
    """One nonce range of one header, as handed to a worker."""

    header: BlockHeader
    transactions: tuple[Transaction, ...]
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def solved(self, nonce: int) -> Block:
        return Block(self.header.with_nonce(nonce), self.transactions)


@dataclass
class _Work:
    """A template being ground and the first nonce not yet handed out."""

    template: Block
    extra_nonce: int
    next_nonce: int = 0
    created_at: float = field(default_factory=time.monotonic)

    def used_up(self, nonce_space: int) -> bool:
        return self.next_nonce >= nonce_space or time.monotonic() - self.created_at >= TEMPLATE_REFRESH_S

    def take(self, size: int, nonce_space: int) -> _Job:
        start, self.next_nonce = self.next_nonce, min(self.next_nonce + size, nonce_space)
        return _Job(self.template.header, self.template.transactions, start, self.next_nonce)


class Miner:
    """Mines on the chain's tip: continuously with run(), or n blocks on request with generate()."""

    def __init__(
        self,
        bus: EventBus,
        chain_service: MiningChain,
        coinbase_script: bytes | None,
        processes: int | None = None,
        *,
        nonce_space: int = NONCE_LIMIT,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        """`nonce_space` (at most 2**32) is how many nonces a template gets before the extra nonce moves on."""
        processes = processes if processes is not None else os.cpu_count() or 1
        if processes < 1:
            raise ValueError(f"the miner needs at least 1 process, got {processes}")
        if not 1 <= nonce_space <= NONCE_LIMIT:
            raise ValueError(f"nonce space must be 1..{NONCE_LIMIT}, got {nonce_space}")
        if chunk < 1:
            raise ValueError(f"nonce chunk must be at least 1, got {chunk}")
        self._bus = bus
        self._chain = chain_service
        self._coinbase_script = coinbase_script
        self.processes = processes
        self._nonce_space = nonce_space
        self._chunk = chunk
        self._meter = HashrateMeter()
        start_method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._mp_context = multiprocessing.get_context(start_method)
        self._epoch = self._mp_context.Value("Q", 0)
        self._lock = asyncio.Lock()  # one block search at a time; generate() takes over from run() between blocks
        self._pool: ProcessPoolExecutor | None = None
        self._subscription: Subscription | None = None
        self._users = 0  # run() and generate() calls currently holding the pool
        self._working_on: bytes | None = None  # parent hash of the template being ground

    @property
    def hashrate(self) -> float:
        """Hashes per second over the last minute (getmininginfo)."""
        return self._meter.rate

    async def run(self) -> None:
        """The --mine service: mine on the tip, paying the configured coinbase script, until cancelled."""
        if self._coinbase_script is None:
            raise ValueError("mining needs a coinbase script: give a wallet address or --mine-address")
        async with self._workers(keep_warm=False):
            while True:
                async with self._lock:
                    block, _ = await self._mine_one(self._coinbase_script, None)
                    if block is None:
                        continue
                    try:
                        await self._submit(block)
                    except BlockRejected as exc:
                        log.error("the chain rejected mined block %s: %s", block.hash(), exc)

    async def generate(self, n: int, coinbase_script: bytes, max_tries: int | None = None) -> list[bytes]:
        """Mine `n` blocks paying `coinbase_script` (generatetoaddress); returns their hashes in order.

        Stops early, with fewer hashes, once `max_tries` nonces have been tried in all.
        A rejected block raises BlockRejected. The worker processes stay up afterwards; see close().
        """
        if n < 0:
            raise ValueError(f"block count must not be negative, got {n}")
        if max_tries is not None and max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {max_tries}")
        mined: list[bytes] = []
        tries_left = max_tries
        async with self._workers(keep_warm=True):
            self._abandon()  # a run() search in progress yields the lock at once
            async with self._lock:
                while len(mined) < n and tries_left != 0:
                    block, tried = await self._mine_one(coinbase_script, tries_left)
                    if tries_left is not None:
                        tries_left -= tried
                    if block is not None and await self._submit(block):
                        mined.append(block.hash_bytes)
        return mined

    async def _mine_one(self, coinbase_script: bytes, max_tries: int | None) -> tuple[Block | None, int]:
        """Search templates on the tip until one is solved; also returns the nonces tried.

        The block is None when the tip moved first or `max_tries` ran out.
        """
        epoch = self._epoch.value
        work = await self._new_work(coinbase_script, 0)
        in_flight: dict[asyncio.Future[tuple[int | None, int]], _Job] = {}
        tried = 0
        try:
            while True:
                while len(in_flight) < self.processes:
                    size = self._chunk
                    if max_tries is not None:
                        size = min(size, max_tries - tried - sum(job.size for job in in_flight.values()))
                    if size <= 0:
                        break
                    if work.used_up(self._nonce_space):
                        work = await self._new_work(coinbase_script, work.extra_nonce + 1)
                    job = work.take(size, self._nonce_space)
                    in_flight[await self._start(job, epoch)] = job
                if not in_flight:
                    return None, tried
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    job = in_flight.pop(future)
                    nonce, count = future.result()
                    tried += count
                    if nonce is not None:
                        return job.solved(nonce), tried
                if self._epoch.value != epoch or self._chain.tip_hash != work.template.header.prev_hash:
                    return None, tried
        finally:
            self._working_on = None
            self._abandon()  # also reaches a job whose submit was under way when this search was cancelled

    async def _new_work(self, coinbase_script: bytes, extra_nonce: int) -> _Work:
        template = await self._chain.block_template(coinbase_script, extra_nonce)
        self._working_on = template.header.prev_hash
        return _Work(template, extra_nonce)

    async def _start(self, job: _Job, epoch: int) -> asyncio.Future[tuple[int | None, int]]:
        """Hand `job` to the pool from a thread: a submit may have to start a worker process, which takes ~0.1 s."""
        if self._pool is None:
            raise RuntimeError("the miner's worker pool is closed")
        prefix = job.header.to_bytes()[:PREFIX_SIZE]
        submit = self._pool.submit
        started = await asyncio.to_thread(submit, search_range, prefix, job.header.target, job.start, job.stop, epoch)
        future = asyncio.wrap_future(started)
        future.add_done_callback(self._count_hashes)
        return future

    def _count_hashes(self, future: asyncio.Future[tuple[int | None, int]]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._meter.record(future.result()[1])

    async def _submit(self, block: Block) -> bool:
        """Hand a solved block to the chain, unless the tip has moved past its parent meanwhile."""
        if block.header.prev_hash != self._chain.tip_hash:
            log.info("dropping solved block %s: its parent is no longer the tip", block.hash())
            return False
        await self._chain.submit_block(block)
        log.info("mined block %s", block.hash())
        return True

    def _abandon(self) -> None:
        """Make every running job stop at its next batch boundary."""
        with self._epoch.get_lock():
            self._epoch.value += 1

    async def _on_tip_changed(self, event: TipChanged) -> None:
        # Compare with the tip as it is now: events can lag behind blocks this miner has just submitted.
        if self._working_on is not None and self._chain.tip_hash != self._working_on:
            self._abandon()

    async def close(self) -> None:
        """Stop the jobs and join every worker process; the daemon calls this once run() and generate() are done."""
        pool, subscription = self._pool, self._subscription
        self._pool = self._subscription = None
        self._abandon()
        if subscription is not None:
            await self._bus.unsubscribe(subscription)
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    @asynccontextmanager
    async def _workers(self, keep_warm: bool) -> AsyncIterator[None]:
        """Have the worker pool and the tip subscription up while a run() or generate() needs them.

        The end of run() stops them. generate() leaves them up for the next call, until close() or the
        end of a run(): starting the processes takes 0.1-0.3 s, far longer than mining a regtest block.
        """
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=self._mp_context,
                initializer=init_worker,
                initargs=(self._epoch, os.getpid()),
            )
            self._subscription = self._bus.subscribe(TipChanged, self._on_tip_changed, maxsize=1, lossless=False)
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0 and not keep_warm:
                await self.close()
