"""Miner hashrate: the workers' nonce loop against a plain hashlib loop, then the whole miner on all cores.

    .venv/bin/python bench/miner_bench.py [--runs 5] [--nonces 1048576] [--processes N]

Per core, side by side in each run: the baseline builds every 80-byte header and
double-hashes it with hashlib; the miner's loop (camelid.node.mining_worker.scan)
copies a SHA-256 state that already holds the 76-byte prefix; a third loop
pre-hashes only the first 64 bytes and appends a 16-byte tail. Then Miner.generate
grinds an impossible target on every core until `--nonces` per process are spent;
that figure includes handing jobs out and collecting results, on a pool
started before timing. Medians of `--runs` runs are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import time

from camelid.core.block import Block, BlockHeader
from camelid.core.script import push_int
from camelid.core.transaction import NULL_HASH, NULL_INDEX, Transaction, TxIn, TxOut
from camelid.crypto.merkle import merkle_root
from camelid.node.bus import EventBus
from camelid.node.miner import Miner
from camelid.node.mining_worker import scan

IMPOSSIBLE_BITS = 0x03000001  # target 1: nothing is found, every nonce is tried
HEADER = BlockHeader(1, bytes(range(32)), bytes(range(32, 64)), 1_795_565_000, IMPOSSIBLE_BITS, 0)
PREFIX = HEADER.to_bytes()[:76]


def baseline_loop(nonces: int) -> None:
    """What a miner without the midstate trick does for every nonce."""
    sha256, target = hashlib.sha256, HEADER.target
    for nonce in range(nonces):
        digest = sha256(sha256(PREFIX + nonce.to_bytes(4, "little")).digest()).digest()
        if int.from_bytes(digest, "little") <= target:
            raise AssertionError("the impossible target was met")


def midstate64_loop(nonces: int) -> None:
    """The alternative midstate: only the first 64 bytes pre-hashed, the 16-byte tail built per nonce."""
    sha256, target = hashlib.sha256, HEADER.target
    copy_midstate, tail = sha256(PREFIX[:64]).copy, PREFIX[64:]
    for nonce in range(nonces):
        inner = copy_midstate()
        inner.update(tail + nonce.to_bytes(4, "little"))
        if int.from_bytes(sha256(inner.digest()).digest(), "little") <= target:
            raise AssertionError("the impossible target was met")


def hashes_per_second(fn, nonces: int) -> float:
    start = time.perf_counter()
    fn(nonces)
    return nonces / (time.perf_counter() - start)


class BenchChain:
    """Templates with an impossible target on a fixed tip: the miner only ever grinds."""

    tip_hash = bytes(32)

    async def block_template(self, coinbase_script: bytes, extra_nonce: int) -> Block:
        script_sig = push_int(1) + push_int(extra_nonce)
        coinbase = Transaction(inputs=(TxIn(NULL_HASH, NULL_INDEX, script_sig),), outputs=(TxOut(0, coinbase_script),))
        header = BlockHeader(1, self.tip_hash, merkle_root([coinbase.hash]), HEADER.time, IMPOSSIBLE_BITS, 0)
        return Block(header, (coinbase,))

    async def submit_block(self, block: Block) -> None:
        raise AssertionError("the impossible target was met")


async def miner_rate(miner: Miner, tries: int) -> float:
    """Hashes per second of Miner.generate grinding `tries` nonces on its warm worker pool."""
    start = time.perf_counter()
    await miner.generate(1, b"\x51", max_tries=tries)
    return tries / (time.perf_counter() - start)


async def measure(runs: int, nonces: int, processes: int) -> tuple[list[float], ...]:
    """Interleave the measurements run by run, so a busy spell on the machine hits all of them alike."""
    bus = EventBus()
    miner = Miner(bus, BenchChain(), None, processes=processes)
    await miner.generate(1, b"\x51", max_tries=processes)  # start the worker processes before timing
    baseline, midstate64, per_core, total = [], [], [], []
    try:
        for _ in range(runs):
            baseline.append(hashes_per_second(baseline_loop, nonces))
            midstate64.append(hashes_per_second(midstate64_loop, nonces))
            per_core.append(hashes_per_second(lambda n: scan(PREFIX, 1, 0, n), nonces))
            total.append(await miner_rate(miner, processes * nonces))
    finally:
        await miner.close()
        await bus.close()
    return baseline, midstate64, per_core, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nonces", type=int, default=1 << 20, help="nonces per run and process (whole miner jobs)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    results = asyncio.run(measure(args.runs, args.nonces, args.processes))
    base, mid64, core, whole = (statistics.median(xs) for xs in results)
    print(f"medians of {args.runs} runs, {args.nonces} nonces per run and process, {os.cpu_count()} CPUs")
    rows = [
        ("hashlib sha256d of 80-byte headers, 1 core", base, ""),
        ("64-byte midstate + 16-byte tail, 1 core", mid64, f"{mid64 / base:.2f}x baseline"),
        ("miner nonce loop (76-byte midstate), 1 core", core, f"{core / base:.2f}x baseline"),
        (f"Miner.generate, {args.processes} processes", whole, f"{whole / core:.2f}x one core"),
    ]
    for label, rate, ratio in rows:
        print(f"  {label:<44}: {rate / 1e6:7.3f} MH/s  {ratio}".rstrip())


if __name__ == "__main__":
    main()
