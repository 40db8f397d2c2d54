"""Concurrent inference (whitepaper 3.2) over real processes: many jobs at once shared by the compute nodes.

One client submits a burst of jobs at once, from parallel RPC calls and with no block in between (each
escrow spends the change of the one before); two compute nodes serving the tiny model share them. A busy
node accepts nothing, takes the oldest open job once free, and honours the other's jobaccept, so every
job gets exactly one testament.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from .framework import TestNode, wait_until
from .jobnet import job_network

pytestmark = pytest.mark.slow

JOBS = 6
REWARD = Decimal("0.1")  # a compute node that took every job stakes 6 x 0.1 of its 10 coins


def test_a_burst_of_jobs_is_shared_by_two_compute_nodes_and_each_is_computed_once(camelid_nodes, tmp_path):
    """Which node takes which job is the claims' and the client's business: a node starved of CPU (two test
    workers on two cores) claims each job after its rival's jobaccept and so takes none, the protocol working.
    What holds whatever the load: every job verified, paid to the one node that computed it, one testament."""
    started: list[TestNode] = []

    def start_recorded(*args, **named) -> list[TestNode]:
        new = camelid_nodes(*args, **named)
        started.extend(new)
        return new

    _, client, _, _ = job_network(start_recorded, tmp_path, computers=2)
    computers = started[2:]
    # All at once, as an API server's clients would: the wallet pays one escrow at a time, so none picks a
    # coin another is spending.
    with ThreadPoolExecutor(JOBS) as pool:
        jobs = list(pool.map(lambda i: client.submitjob(f"llama number {i}", 8, None, i, 0, REWARD), range(JOBS)))
    assert len(set(jobs)) == JOBS
    # No block came in between, so every escrow is unconfirmed: all but the first spent the change of the one
    # before (the client's only coin was the one output job_network sent it).
    mempool = set(client.getrawmempool())
    assert all(client.getjob(job)["escrow_txid"] in mempool for job in jobs)

    def verdicts() -> list[str | None]:
        return [client.getjob(job)["verdict"] for job in jobs]

    wait_until(lambda: None not in verdicts(), timeout=60, interval=0.2, what="a verdict on every job")
    assert verdicts() == ["verified"] * JOBS
    node_ids = {computer.getnetworkinfo()["nodeid"]: computer for computer in computers}
    paid = Counter(client.getjob(job)["paid_node"] for job in jobs)
    assert set(paid) <= set(node_ids), paid  # each job paid to one of the two compute nodes
    for node_id, computer in node_ids.items():
        roles = {entry["jobid"]: entry["role"] for entry in computer.listjobs()}
        assert sorted(job for job, role in roles.items() if role == "compute") == sorted(
            job for job in jobs if client.getjob(job)["paid_node"] == node_id
        )
    # Computed once: one testament per job in every node's pool. Two jobaccepts are allowed: nodes that claim
    # a job within a jobaccept's trip of each other both accept it, the client sends its prompt to one of them,
    # and the other leaves it unstaked.
    for node in (client, *computers):
        for job in jobs:
            assert len(node.getjob(job)["testaments"]) == 1, (node.index, node.getjob(job))


def test_a_node_with_four_slots_computes_four_jobs_at_once(camelid_nodes, tmp_path):
    _, client, computer, _ = job_network(camelid_nodes, tmp_path, "--compute-slots=4")
    assert computer.getcomputeinfo()["worker_settings"]["slots"] == 4
    (model,) = computer.getcomputeinfo()["models"]
    os.kill(model["pid"], signal.SIGSTOP)  # frozen as in four long generations: no job can finish
    try:
        with ThreadPoolExecutor(4) as pool:
            jobs = list(pool.map(lambda i: client.submitjob(f"alpaca number {i}", 8, None, i, 0, REWARD), range(4)))
        # One at a time, the node would take the second job only once the first was generated.
        node_id = computer.getnetworkinfo()["nodeid"]
        wait_until(lambda: all(client.getjob(job)["accepted_by"] == [node_id] for job in jobs), what="four accepted")
    finally:
        os.kill(model["pid"], signal.SIGCONT)
    wait_until(lambda: all(client.getjob(job)["verdict"] for job in jobs), timeout=60, what="a verdict on every job")
    assert [client.getjob(job)["verdict"] for job in jobs] == ["verified"] * 4
