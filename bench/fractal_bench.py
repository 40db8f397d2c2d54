"""Task fractalization (whitepaper 5.4): does each level of a task's tree add one job's time, not one per subtask?

For each compute node count (default 1 and 3) a fresh regtest network is started: a miner without the model, a
client that holds the model but computes nothing (it verifies every output with RASTiC), and that many compute
nodes, all on gemma-3-270m. On it the bench times one job alone (the task's root outline, submit to verified),
then one task of depth D and fanout F (submittask to the task's end), and prints the task's wall time against

- (D + 1) x one job's time: what a perfectly parallel network would take (one job per level);
- the task's jobs run one after another: number of jobs x one job's time. (Not the sum of the jobs' own
  times: jobs submitted together wait for each other on a busy node, so their times overlap.)

    PYTHONPATH=.:tests .venv/bin/python -m bench.fractal_bench [--depth 2] [--fanout 3] [--max-tokens 48] [--nodes 1 3]

How many jobs the tree has depends on what the model's outlines list (at most 1 + F + ... + F^D). Every camelidd
process shares this machine's cores: with fewer free cores than compute nodes, more nodes add parallel claims but
no parallel arithmetic, so the parallel figure is only approached on a machine with cores to spare.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from camelid.compute.models import default_model_path
from camelid.node.task_outline import outline_prompt
from tests.functional.framework import TestNode, wait_until
from tests.functional.jobnet import funded_network

GOAL = "Build a small online shop that sells llama wool"
REWARD = "0.01"
TIMEOUT = 1800.0


def node_starter(basedir: Path, started: list[TestNode]):
    """A camelid_nodes-like starter for funded_network, outside pytest; every node it starts goes in `started`."""

    def start(count: int, extra_args: list[list[str]] | None = None) -> list[TestNode]:
        new = [TestNode(len(started) + i, basedir, extra_args[i] if extra_args else ()) for i in range(count)]
        started.extend(new)
        for node in new:
            node.start()
        return new

    return start


def job_seconds(client: TestNode, job_id: str) -> float:
    """A job's time from its creation to its verdict, as the client's node recorded them."""
    times = {entry["state"]: float(entry["time"]) for entry in client.getjob(job_id)["history"]}
    return times["verified"] - times["created"]


def walk(node: dict) -> list[dict]:
    return [node, *(below for child in node["children"] for below in walk(child))]


def measure(basedir: Path, model: Path, computers: int, args: argparse.Namespace) -> dict[str, float]:
    started: list[TestNode] = []
    serve = f"--serve-model={model}"
    try:
        _, (client, *_), _ = funded_network(
            node_starter(basedir, started), [[serve, "--nocompute"], *[[serve]] * computers]
        )
        one = client.submitjob(outline_prompt(GOAL, [], args.fanout), args.max_tokens, None, 0, 0, REWARD)
        wait_until(lambda: client.getjob(one)["verdict"], timeout=TIMEOUT, interval=0.2, what="one job")
        single = job_seconds(client, one)
        options = {"depth": args.depth, "fanout": args.fanout, "max_tokens": args.max_tokens, "reward_per_job": REWARD}
        task = client.submittask(GOAL, options)
        wait_until(lambda: client.gettask(task)["state"] != "running", timeout=TIMEOUT, interval=0.2, what="task")
        info = client.gettask(task)
        nodes = [node for node in walk(info["tree"]) if node["jobid"]]
        return {
            "wall": float(info["finished"]) - float(info["created"]),
            "single": single,
            "jobs": len(nodes),
            "verified": sum(node["state"] == "verified" for node in nodes),
            "levels": max(len(node["node"].split(".")) if node["node"] else 0 for node in nodes) + 1,
        }
    finally:
        for node in reversed(started):
            node.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--fanout", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 3], help="compute node counts")
    args = parser.parse_args()
    model = default_model_path()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; model {model.name}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="camelid-fractal-bench-") as tmp:
        for computers in args.nodes:
            started = time.monotonic()
            results[computers] = measure(Path(tmp) / f"net{computers}", model, computers, args)
            print(f"  {computers} compute node(s) measured in {time.monotonic() - started:.0f} s", flush=True)
    print(f"\ndepth {args.depth}, fanout {args.fanout}, {args.max_tokens} tokens per job; seconds")
    print(f"{'nodes':>5}  {'jobs':>9}  {'levels':>6}  {'one job':>7}  {'task':>7}  {'(D+1)x1':>8}  {'one by one':>10}")
    for computers, r in results.items():
        print(
            f"{computers:>5}  {r['verified']:>4}/{r['jobs']:<4}  {r['levels']:>6}  {r['single']:7.1f}  "
            f"{r['wall']:7.1f}  {(args.depth + 1) * r['single']:8.1f}  {r['jobs'] * r['single']:10.1f}"
        )
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
