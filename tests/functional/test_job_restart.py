"""Restarting any node mid-job loses no job state (issue 6): the job journal and the catch-up of new peers.

The compute node is down when the job is submitted and the client restarts before the compute node comes
back, so every step crosses a restart: the compute node learns the job from the miner when it comes back,
the client sends it the private prompt and pays with the prompt and key its journal kept, and the compute
node, restarted once more after the payment, still takes its reward and stake back. (A client must be online
while its job is taken: only it holds the prompt.)
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from .framework import TestNode, wait_until
from .jobnet import FUNDS, job_network

pytestmark = pytest.mark.slow


def states(node: TestNode, job: str) -> list[str]:
    return [entry["state"] for entry in node.getjob(job)["history"]]


def test_no_job_state_is_lost_when_client_compute_node_and_miner_restart_mid_job(camelid_nodes, tmp_path):
    miner, client, compute, mine_to = job_network(camelid_nodes, tmp_path)
    compute.stop()
    job = client.submitjob("The llama", 8, None, 0, 0, Decimal(1), 25)
    wait_until(lambda: miner.listjobs() != [], what="the job at the miner")
    miner.generatetoaddress(1, mine_to)  # the escrow confirmed: a restarted node finds it in its chain
    wait_until(lambda: client.getblockcount() == miner.getblockcount(), what="the client synced")
    submitted = client.getjob(job)
    client.stop()

    # The client comes back first: only it holds the prompt (its journal kept it, with the key that pays), and
    # a compute node computes nothing before the client sends it.
    client.start()
    compute.start()  # learns the job from the miner, which it connects to again, and gets the prompt from the client
    wait_until(lambda: "completed" in states(miner, job), timeout=60, what="the testament at the miner")
    assert compute.getjob(job)["role"] == "compute" and compute.getjob(job)["prompt"] == "The llama"
    wait_until(lambda: client.getjob(job)["state"] == "verified", timeout=60, what="payment, delivery and verdict")
    mine = client.getjob(job)
    assert mine["history"][0] == submitted["history"][0] and mine["escrow_txid"] == submitted["escrow_txid"]
    assert states(client, job) == ["created", "accepted", "completed", "paid", "delivered", "verified"]
    assert mine["verdict"] == "verified" and mine["text"] and mine["role"] == "client"

    before = miner.getjob(job)
    miner.stop()
    miner.start()
    assert miner.getjob(job)["history"] == before["history"]  # the observer's record too
    wait_until(lambda: miner.getconnectioncount() == 2, what="the network again")
    work = compute.getjob(job)
    compute.stop()
    compute.start()  # paid and delivered: it must still take its PAYOUT and STAKE back
    wait_until(lambda: compute.getconnectioncount() == 1, what="the compute node reconnected")
    assert compute.getjob(job)["history"] == work["history"] and compute.getjob(job)["role"] == "compute"

    def mined(predicate) -> bool:
        miner.generatetoaddress(1, mine_to)
        time.sleep(0.3)
        return predicate()

    fees = Decimal("0.001")
    wait_until(
        lambda: mined(lambda: compute.getbalance() > FUNDS + 1 - fees),
        timeout=90,
        interval=0.5,
        what="the reward and the stake back in the restarted compute node's wallet",
    )
    assert all(node.getjob(job)["state"] == "settled" for node in (miner, compute))
