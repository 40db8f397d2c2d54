"""Model fetch throughput over the network: the real default model from one peer, then from three.

Three camelidd nodes serve the default model (gemma-3-270m Q4_K_M, 1 MiB chunks); one fetcher node is
connected to the first server only, another to all three. Each run times `fetchmodel` to a complete,
Merkle-checked file (polling getmodelinfo) on both fetchers side by side, then removes the copies.
All processes share this machine's cores and loopback, so the three-peer figure measures how well the
fetcher keeps several pipes busy, not a WAN. The per-peer upload limit is lifted (--peer-rate) unless
given, so that the figures are the protocol's, not the default limit's.

    .venv/bin/python -m bench.model_fetch_bench [--runs 3] [--peer-rate KIB_PER_S]    (from the repository root)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from camelid.compute.models import default_model_path
from tests.functional.framework import TestNode, wait_until

UNLIMITED_KIB = 10_000_000  # KiB/s: far above what loopback carries here
POLL = 0.05  # seconds between progress polls


def fetch_seconds(node: TestNode, model_id: str) -> float:
    """Start a fetch on `node`; seconds until the checked file is in its store."""
    start = time.perf_counter()
    node.fetchmodel(model_id)
    wait_until(lambda: node.getmodelinfo(model_id)["status"] == "complete", timeout=600, interval=POLL,
               what="the fetched model")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer-rate", type=int, default=UNLIMITED_KIB, help="servers' per-peer limit, KiB/s")
    args = parser.parse_args()
    model = default_model_path()
    rates = [f"--model-peer-upload-rate={args.peer_rate}", f"--model-upload-rate={args.peer_rate}"]
    with tempfile.TemporaryDirectory(prefix="camelid-model-bench-") as tmp:
        nodes: list[TestNode] = []
        try:
            servers = []
            for index in range(3):
                nodes.append(TestNode(index, Path(tmp), [f"--serve-model={model}", *rates]))
                nodes[-1].start()
                servers.append(nodes[-1])
            model_id = servers[0].listmodels()[0]["id"]
            size = servers[0].listmodels()[0]["size"]
            # --nolisten: servers that hear of a fetcher's address through gossip must not dial it
            one = TestNode(3, Path(tmp), ["--nolisten", f"--connect=127.0.0.1:{servers[0].p2p_port}"])
            three = TestNode(4, Path(tmp), ["--nolisten", *(f"--connect=127.0.0.1:{s.p2p_port}" for s in servers)])
            for fetcher, peers in ((one, 1), (three, 3)):
                nodes.append(fetcher)
                fetcher.start()
                wait_until(lambda f=fetcher, n=peers: f.getconnectioncount() == n, what="the fetcher connected")
            times: dict[int, list[float]] = {1: [], 3: []}
            for run in range(args.runs):
                for fetcher, peers in ((one, 1), (three, 3)):
                    seconds = fetch_seconds(fetcher, model_id)
                    times[peers].append(seconds)
                    fetcher.removemodel(model_id)
                    print(f"run {run + 1}: {peers} peer(s) {seconds:6.2f} s  {size / seconds / 2**20:7.1f} MiB/s")
        finally:
            for node in nodes:
                node.teardown()
    medians = {peers: statistics.median(values) for peers, values in times.items()}
    print(f"model {model.name}: {size / 2**20:.1f} MiB, {args.runs} runs, per-peer limit {args.peer_rate} KiB/s")
    for peers, seconds in medians.items():
        print(f"  from {peers} peer(s): median {seconds:6.2f} s = {size / seconds / 2**20:7.1f} MiB/s")
    print(f"  speed-up, 3 peers over 1: {medians[1] / medians[3]:.2f}x")


if __name__ == "__main__":
    main()
