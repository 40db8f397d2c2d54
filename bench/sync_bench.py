"""Initial block download speed over P2P against validating the same blocks from local disk.

A regtest camelidd mines N blocks. Each run then times (a) a fresh camelidd that
is told to `addnode` the miner, from the connection until it has the miner's tip, and (b)
ChainState.process_block in this process over the same blocks into an empty data
directory (LevelDB writes included, as in the node). Prints the median blocks/s
of each and the ratio: what the network layer costs on top of validation.

    .venv/bin/python -m bench.sync_bench [--blocks 2000] [--runs 3]    (from the repository root)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from camelid.chain.chainstate import ChainState
from camelid.core.block import Block
from camelid.core.params import REGTEST
from tests.functional.framework import TestNode, wait_until
from tests.functional.util import MINER_ADDRESS

MINE_BATCH = 500


def network_sync_seconds(source: TestNode, basedir: Path, index: int, tip: str) -> float:
    """Seconds a fresh node takes, from its connection to the source to holding `tip`.

    The clock starts once the connection is up, not at `addnode`: the node dials added peers on its
    next dial round (every few seconds), which is no part of the sync speed.
    """
    node = TestNode(index, basedir)
    node.start()
    try:
        node.addnode(f"127.0.0.1:{source.p2p_port}", "add")
        wait_until(lambda: node.getconnectioncount() == 1, interval=0.005, what="the fresh node connected")
        started = time.perf_counter()
        wait_until(lambda: node.getbestblockhash() == tip, timeout=600, interval=0.01, what="the fresh node synced")
        return time.perf_counter() - started
    finally:
        node.stop()


def local_validation_seconds(blocks: list[Block], datadir: Path) -> float:
    """Seconds ChainState.process_block takes over `blocks`, into an empty chain state."""
    chainstate = ChainState.open(datadir, REGTEST)
    try:
        started = time.perf_counter()
        for block in blocks:
            chainstate.process_block(block)
        elapsed = time.perf_counter() - started
        assert chainstate.tip.hash == blocks[-1].hash_bytes
        return elapsed
    finally:
        chainstate.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        basedir = Path(tmp)
        source = TestNode(0, basedir, ["--mine-processes=1"])
        source.start()
        try:
            for start in range(0, args.blocks, MINE_BATCH):
                source.generatetoaddress(min(MINE_BATCH, args.blocks - start), MINER_ADDRESS)
            tip = source.getbestblockhash()
            blocks = [
                Block.from_bytes(bytes.fromhex(source.getblock(source.getblockhash(h), 0)))
                for h in range(1, args.blocks + 1)
            ]
            network, local = [], []
            for run in range(args.runs):
                network.append(network_sync_seconds(source, basedir, run + 1, tip))
                local.append(local_validation_seconds(blocks, basedir / f"local{run}"))
        finally:
            source.stop()

    network_rate = args.blocks / statistics.median(network)
    local_rate = args.blocks / statistics.median(local)
    print(f"{args.blocks} regtest blocks, median of {args.runs} runs each")
    print(f"  P2P sync from one peer : {network_rate:8.0f} blocks/s")
    print(f"  local process_block    : {local_rate:8.0f} blocks/s")
    print(f"  ratio (P2P / local)    : {network_rate / local_rate:8.2f}")


if __name__ == "__main__":
    main()
