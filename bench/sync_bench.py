"""Initial block download speed over P2P against validating the same blocks from local disk.

Regtest camelidd sources hold N blocks (one mines them, the others copy its data
directory). Each round then times, on the same machine and one after the other:
(a) a fresh camelidd told to `addnode` the sources, from the first connection
until it has their tip; (b) ChainState.process_block in this process over the
same blocks, decoded from their bytes, into an empty data directory (LevelDB
writes and one fsync per block, as a node that is handed blocks one at a time);
(c) ChainState.process_blocks over runs of DOWNLOAD_WINDOW blocks (one fsync per
run, what the sync's connector does at best). Prints the median blocks/s of each, with the CPU time each took per block
(the syncing node's and the sources' from /proc, which shows what a busy shared
machine hides), then `ratio sync / local: X`, sync against (b), the goal of issue
17, and the same against (c).

    .venv/bin/python -m bench.sync_bench [--blocks 2000] [--runs 5] [--peers 1]    (from the repository root)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from camelid.chain.chainstate import ChainState
from camelid.core.block import Block
from camelid.core.params import REGTEST
from camelid.p2p.sync import DOWNLOAD_WINDOW
from tests.functional.framework import TestNode, wait_until
from tests.functional.util import MINER_ADDRESS

MINE_BATCH = 500


def cpu_seconds(node: TestNode) -> float:
    """User and system CPU time the node's process has used so far (Linux /proc)."""
    assert node.process is not None
    fields = Path(f"/proc/{node.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_tip(node: TestNode, tip: str, target: int, started: float, timeout: float = 600) -> None:
    """Return once `node` holds `tip`, polling it sparingly: each RPC costs the syncing node CPU.

    The next poll is due when, at the rate so far, about half the remaining blocks will have connected
    (5 ms at least), so a sync is timed to within a few ms with a dozen polls rather than one every 10 ms.
    """
    while (height := node.getblockcount()) < target or node.getbestblockhash() != tip:
        elapsed = time.perf_counter() - started
        if elapsed > timeout:
            raise AssertionError(f"the fresh node did not sync in {timeout} s: at height {height} of {target}")
        remaining = elapsed * (target - height) / height if height else 0.05
        time.sleep(min(max(remaining / 2, 0.005), 0.5))


def network_sync_seconds(
    sources: list[TestNode], basedir: Path, index: int, blocks: list[Block]
) -> tuple[float, float, float]:
    """Seconds a fresh node takes, from its first connection to a source to holding the last of `blocks`;
    and the CPU seconds the fresh node and the sources used meanwhile.

    The clock starts once a connection is up, not at `addnode`: the node dials added peers on its
    next dial round (every few seconds), which is no part of the sync speed.
    """
    node = TestNode(index, basedir)
    node.start()
    try:
        for source in sources:
            node.addnode(f"127.0.0.1:{source.p2p_port}", "add")
        wait_until(lambda: node.getconnectioncount() >= 1, interval=0.005, what="the fresh node connected")
        cpu = [cpu_seconds(node), sum(map(cpu_seconds, sources))]
        started = time.perf_counter()
        wait_for_tip(node, blocks[-1].hash(), len(blocks), started)
        elapsed = time.perf_counter() - started
        return elapsed, cpu_seconds(node) - cpu[0], sum(map(cpu_seconds, sources)) - cpu[1]
    finally:
        node.stop()


def local_seconds(
    raw_blocks: list[bytes], datadir: Path, connect: Callable[[ChainState, list[bytes]], None]
) -> tuple[float, float]:
    """Seconds and CPU seconds `connect` takes to bring an empty chain state in `datadir` to the tip of
    `raw_blocks`, decoding included (as from disk, and as the syncing node decodes what it receives)."""
    chainstate = ChainState.open(datadir, REGTEST)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        connect(chainstate, raw_blocks)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert chainstate.tip.hash == Block.from_bytes(raw_blocks[-1]).hash_bytes
        return elapsed, cpu
    finally:
        chainstate.close()
        shutil.rmtree(datadir)


def one_at_a_time(chainstate: ChainState, raw_blocks: list[bytes]) -> None:
    for raw in raw_blocks:
        chainstate.process_block(Block.from_bytes(raw))


def in_runs(chainstate: ChainState, raw_blocks: list[bytes]) -> None:
    for start in range(0, len(raw_blocks), DOWNLOAD_WINDOW):
        run = [Block.from_bytes(raw) for raw in raw_blocks[start : start + DOWNLOAD_WINDOW]]
        results = chainstate.process_blocks(run)
        assert all(not isinstance(result, Exception) for result in results)


def start_sources(basedir: Path, count: int, blocks: int) -> list[TestNode]:
    """`count` nodes holding `blocks` mined blocks: the first mines them, the others start on a copy of its chain."""
    miner = TestNode(0, basedir, ["--mine-processes=1"])
    miner.start()
    for start in range(0, blocks, MINE_BATCH):
        miner.generatetoaddress(min(MINE_BATCH, blocks - start), MINER_ADDRESS)
    sources = [miner]
    if count > 1:
        miner.stop()
        for index in range(1, count):
            copy = TestNode(100 + index, basedir)
            shutil.copytree(miner.net_datadir / "chainstate", copy.net_datadir / "chainstate")
            sources.append(copy)
        for source in sources:
            source.start()
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peers", type=int, default=1, help="source nodes the fresh node syncs from")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        basedir = Path(tmp)
        sources = start_sources(basedir, args.peers, args.blocks)
        try:
            source = sources[0]
            raw_blocks = [bytes.fromhex(source.getblock(source.getblockhash(h), 0)) for h in range(1, args.blocks + 1)]
            blocks = [Block.from_bytes(raw) for raw in raw_blocks]
            network, local, batched = [], [], []
            for run in range(args.runs):
                network.append(network_sync_seconds(sources, basedir, run + 1, blocks))
                local.append(local_seconds(raw_blocks, basedir / f"local{run}", one_at_a_time))
                batched.append(local_seconds(raw_blocks, basedir / f"batched{run}", in_runs))
        finally:
            for source in sources:
                source.stop()

    def rate(measures: list[tuple[float, ...]]) -> float:
        return args.blocks / statistics.median(m[0] for m in measures)

    def cpu(measures: list[tuple[float, ...]], column: int = 1) -> str:
        return f"{1000 * statistics.median(m[column] for m in measures) / args.blocks:.3f}"

    sync_rate, local_rate, batched_rate = rate(network), rate(local), rate(batched)
    print(f"{args.blocks} regtest blocks, median of {args.runs} rounds, each measured in the same round")
    print(f"  P2P sync from {args.peers} peer(s)             : {sync_rate:8.0f} blocks/s"
          f"   CPU ms/block: syncing node {cpu(network)}, sources {cpu(network, 2)}")
    print(f"  local process_block                : {local_rate:8.0f} blocks/s   CPU ms/block: {cpu(local)}")
    print(f"  local process_blocks, runs of {DOWNLOAD_WINDOW:<4} : {batched_rate:8.0f} blocks/s"
          f"   CPU ms/block: {cpu(batched)}")
    rounds = " ".join(f"{b[0] / a[0]:.2f}" for a, b in zip(network, local, strict=True))
    print(f"  per-round sync / local             : {rounds}")
    print(f"ratio sync / local: {sync_rate / local_rate:.2f}")
    print(f"ratio sync / local in runs: {sync_rate / batched_rate:.2f}")

if __name__ == "__main__":
    main()
