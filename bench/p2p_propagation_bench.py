"""Block propagation latency along a line of camelidd nodes (node i dials only node i-1).

A block is mined on node 0 with generatetoaddress; from the moment the RPC
returns (the block is connected there) we poll node 1 and the last node until
each has it as its tip. Prints the medians over several blocks, the per-hop
figure and the ratio of the whole line to one hop (ideally the hop count).

    .venv/bin/python -m bench.p2p_propagation_bench [--nodes 8] [--blocks 15]    (from the repository root)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.functional.framework import TestNode, wait_until
from tests.functional.util import MINER_ADDRESS

POLL = 0.002  # seconds between tip checks; well below the latencies measured


def start_line(basedir: Path, count: int) -> list[TestNode]:
    nodes: list[TestNode] = []
    for index in range(count):
        dial = [f"--connect=127.0.0.1:{nodes[-1].p2p_port}"] if nodes else []
        node = TestNode(index, basedir, ["--mine-processes=1", *dial])
        node.start()
        nodes.append(node)
    for left, right in zip(nodes, nodes[1:], strict=False):
        wait_until(lambda left=left: left.getconnectioncount() >= 1, what="the line connected")
        wait_until(lambda right=right: right.getconnectioncount() >= 1, what="the line connected")
    return nodes


def propagate_one(first: TestNode, neighbour: TestNode, last: TestNode) -> tuple[float, float]:
    """Mine a block on `first`; seconds until `neighbour`, and until `last`, have it as their tip."""
    (block_hash,) = first.generatetoaddress(1, MINER_ADDRESS)
    mined = time.perf_counter()
    arrived: dict[str, float] = {}
    while len(arrived) < 2:
        for name, node in (("neighbour", neighbour), ("last", last)):
            if name not in arrived and node.getbestblockhash() == block_hash:
                arrived[name] = time.perf_counter() - mined
        if time.perf_counter() - mined > 60:
            raise TimeoutError(f"block {block_hash} did not cross the line in 60 s")
        time.sleep(POLL)
    return arrived["neighbour"], arrived["last"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        nodes = start_line(Path(tmp), args.nodes)
        try:
            propagate_one(nodes[0], nodes[1], nodes[-1])  # warm-up: first announcements, first getheaders
            timings = [propagate_one(nodes[0], nodes[1], nodes[-1]) for _ in range(args.blocks)]
        finally:
            for node in nodes:
                node.teardown()

    one_hop = statistics.median(t[0] for t in timings)
    whole = statistics.median(t[1] for t in timings)
    hops = args.nodes - 1
    print(f"block propagation over a line of {args.nodes} camelidd nodes, median of {args.blocks} blocks")
    print(f"  node 0 -> node 1          : {one_hop * 1000:8.1f} ms")
    print(f"  node 0 -> node {hops:<2}         : {whole * 1000:8.1f} ms  ({whole / hops * 1000:.1f} ms per hop)")
    print(f"  ratio whole line / 1 hop  : {whole / one_hop:8.2f}  (hops: {hops})")


if __name__ == "__main__":
    main()
