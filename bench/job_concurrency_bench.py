"""Concurrent inference (whitepaper 3.2): jobs/s with 1, 2 and 4 compute nodes on the tiny model.

For each node count a fresh regtest network is started: a miner without the model, a client and that many
compute nodes, all serving the tiny test model (so the client verifies every output with RASTiC itself). Each
repetition submits a burst of N jobs at once (back-to-back submitjob calls, each escrow spending the previous
one's unconfirmed change) and takes the wall time from the first submitjob to the last job's "verified" in the
client's own state history (recorded by the node, not found by polling). Prints the medians, jobs/s, the ratio
to the 1-node figure, how the jobs spread over the nodes and how many were computed twice.

    .venv/bin/python -m bench.job_concurrency_bench [--jobs 12] [--repeats 3] [--nodes 1 2 4]   (from the repo root)

Every camelidd process shares this machine's cores: with fewer cores than compute nodes, more nodes add
parallel claims but no parallel arithmetic, and the client verifying every job is one more serial stage.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.functional.framework import TestNode, wait_until
from tests.tiny_model import write_tiny_model

FUNDS = 10
"""Coins the miner sends the client and each compute node (a node stakes REWARD per job it takes)."""
REWARD = "0.01"
MAX_TOKENS = 8
POLL = 0.1
"""Seconds between listjobs calls while waiting for the verdicts; the timings come from the history, not this."""
BURST_TIMEOUT = 300.0


@dataclass(frozen=True)
class Burst:
    """One repetition: N jobs submitted at once, until the last verdict."""

    seconds: float
    per_node: list[int]  # jobs each compute node was paid for, most first
    duplicates: int  # testaments beyond the first, summed over the jobs


def start_network(basedir: Path, model: Path, computers: int) -> tuple[TestNode, TestNode, list[TestNode]]:
    """(miner, client, compute nodes), the client and compute nodes serving `model` and holding FUNDS confirmed."""
    miner = TestNode(0, basedir)
    miner.start()
    connect = [f"--connect=127.0.0.1:{miner.p2p_port}", f"--serve-model={model}"]
    others = [TestNode(index, basedir, connect) for index in range(1, 2 + computers)]
    for node in others:
        node.start()
    wait_until(lambda: miner.getconnectioncount() == len(others), timeout=60, what="every node connected")
    for node in (miner, *others):
        node.createwallet("default")
    mine_to = miner.getnewaddress()
    miner.generatetoaddress(100 + len(others), mine_to)  # a mature 50-coin coinbase per node funded
    for node in others:
        miner.sendtoaddress(node.getnewaddress(), FUNDS)
    miner.generatetoaddress(1, mine_to)
    for node in others:
        wait_until(lambda node=node: node.getbalance() == FUNDS, timeout=60, what=f"node{node.index} funded")
    return miner, others[0], others[1:]


def burst(client: TestNode, computers: list[TestNode], count: int, round_: int) -> Burst:
    """Submit `count` jobs back to back; the seconds from the first submitjob to the last verdict."""
    started = time.time()
    jobs = {client.submitjob(f"llama {round_}.{i}", MAX_TOKENS, None, i, 0, REWARD) for i in range(count)}
    wait_until(
        lambda: sum(entry["jobid"] in jobs and entry["state"] == "verified" for entry in client.listjobs()) == count,
        timeout=BURST_TIMEOUT,
        interval=POLL,
        what=f"{count} verified jobs",
    )
    infos = [client.getjob(job) for job in jobs]
    finished = max(float(entry["time"]) for info in infos for entry in info["history"] if entry["state"] == "verified")
    names = {computer.getnetworkinfo()["nodeid"]: computer.index for computer in computers}
    paid = Counter(names[info["paid_node"]] for info in infos)
    per_node = sorted((paid[index] for index in names.values()), reverse=True)
    return Burst(finished - started, per_node, sum(len(info["testaments"]) - 1 for info in infos))


def measure(basedir: Path, model: Path, computers: int, count: int, repeats: int) -> list[Burst]:
    """A fresh network with `computers` compute nodes: one warm-up burst, then `repeats` timed ones."""
    miner, client, nodes = start_network(basedir, model, computers)
    mine_to = miner.getnewaddress()
    try:
        bursts = []
        for round_ in range(repeats + 1):
            bursts.append(burst(client, nodes, count, round_))
            miner.generatetoaddress(1, mine_to)  # confirm the escrows and stakes: every burst starts alike
        return bursts[1:]
    finally:
        for node in (*nodes, client, miner):
            node.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=12, help="jobs per burst")
    parser.add_argument("--repeats", type=int, default=3, help="timed bursts per node count, after one warm-up")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4], help="compute node counts")
    args = parser.parse_args()
    if args.jobs < 1 or args.repeats < 1 or any(n < 1 for n in args.nodes):
        raise SystemExit("--jobs, --repeats and --nodes must be positive")

    print(
        f"{os.cpu_count()} cores shared by every camelidd process (miner, client, compute nodes) and this one; "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    results: dict[int, list[Burst]] = {}
    with tempfile.TemporaryDirectory(prefix="camelid-concurrency-bench-") as tmp:
        model = write_tiny_model(Path(tmp) / "tiny.gguf")
        for computers in args.nodes:
            results[computers] = measure(Path(tmp) / f"net{computers}", model, computers, args.jobs, args.repeats)

    print(
        f"\n{args.jobs} jobs of {MAX_TOKENS} tokens submitted at once, first submitjob -> last verified; "
        f"median of {args.repeats} bursts"
    )
    print(
        f"{'nodes':>5}  {'seconds':>8}  {'jobs/s':>7}  {'ratio':>6}  {'jobs per node (median burst)':<30}  duplicates"
    )
    rates = {
        computers: args.jobs / statistics.median(b.seconds for b in bursts) for computers, bursts in results.items()
    }
    for computers, bursts in results.items():
        ratio = f"{rates[computers] / rates[1]:6.2f}" if 1 in rates else "     -"
        middle = sorted(bursts, key=lambda b: b.seconds)[len(bursts) // 2]
        duplicates = sum(b.duplicates for b in bursts)
        print(
            f"{computers:>5}  {args.jobs / rates[computers]:8.2f}  {rates[computers]:7.2f}  {ratio}  "
            f"{str(middle.per_node):<30}  {duplicates}"
        )
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
