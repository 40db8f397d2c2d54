"""No forger can cheat a client out of an honest node's work (issue 14): each attack on the real wire.

The forger is tests/functional/forger.py: an authenticated peer with a key of its own. Each test runs one
forgery against real camelidd processes (docs/jobs-design.md, "Attacks by a compute node, an impostor or a
verifier") and shows the rule that stops it: without the rule, the honest node never computes the job,
or its delivery is refused, and the client gets nothing.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from tiny_model import write_tiny_model

from camelid.core.consensus import COIN
from camelid.rpc.client import JSONRPCError

from .forger import Forger
from .framework import TestNode, wait_until
from .hostile_compute import HostileComputeNode
from .jobnet import funded_network, job_network

pytestmark = pytest.mark.slow

REWARD = Decimal(1)


def test_a_testament_forged_under_the_compute_nodes_id_is_dropped_and_only_its_sender_punished(
    camelid_nodes, tmp_path
):
    """Once, a forged testament under node X's id closed the job for every node and turned X's honest
    delivery into a bad signature, for which the honest relays were banned."""
    miner, client, compute, _ = job_network(camelid_nodes, tmp_path)
    forger = Forger(miner, "127.0.0.7")
    compute_id = bytes.fromhex(compute.getnetworkinfo()["nodeid"])
    with miner.assert_debug_log(["forged-testament", "127.0.0.7 discouraged"], timeout=30):
        job = client.submitjob("The llama", 8, None, 0, 0, REWARD, 30)
        forger.next_job()
        forger.peer.send(forger.testament_as(bytes.fromhex(job)[::-1], compute_id))
        assert forger.peer.closed_by_node()
    forger.close()
    wait_until(lambda: client.getjob(job)["verdict"] is not None, timeout=40, what="the verdict")
    info = client.getjob(job)
    assert info["verdict"] == "verified" and info["paid_node"] == compute_id.hex()
    assert [t["node"] for t in info["testaments"]] == [compute_id.hex()]
    assert miner.getconnectioncount() == 2  # the honest relays were never blamed


def test_throwaway_accepts_delay_a_job_but_cannot_hold_it_past_its_deadline(camelid_nodes, tmp_path):
    """Once, sixteen jobaccepts under made-up ids held a job 16 patiences long: past any deadline."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    serve = [f"--serve-model={model}", "--compute-escrow-confirmations=1"]  # it claims once a block comes
    miner, (client, compute), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}"], serve])
    forger = Forger(miner, "127.0.0.8")
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD, 40)
    job_id = bytes.fromhex(job)[::-1]
    wait_until(lambda: in_pool(miner, job) and in_pool(compute, job), what="the job, admitted once its escrow is seen")
    forger.next_job()
    for accept in forger.throwaway_accepts(job_id, 16):
        forger.peer.send(accept)
    wait_until(lambda: len(compute.getjob(job)["accepted_by"]) == 4, what="the accepts, up to the bound")
    miner.generatetoaddress(1, mine_to)
    wait_until(lambda: client.getjob(job)["verdict"] is not None, timeout=40, what="the verdict")
    info = client.getjob(job)
    assert info["verdict"] == "verified"
    assert info["paid_node"] == compute.getnetworkinfo()["nodeid"]
    forger.close()


def test_a_testament_with_no_stake_behind_it_does_not_take_the_job(camelid_nodes, tmp_path):
    """A testament under a fresh node id is validly signed and costs nothing; its stake would cost."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    serve = [f"--serve-model={model}", "--compute-escrow-confirmations=1"]
    miner, (client, compute), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}"], serve])
    forger = Forger(miner, "127.0.0.9")
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD, 60)
    wait_until(lambda: in_pool(miner, job) and in_pool(compute, job), what="the job, admitted once its escrow is seen")
    forger.next_job()
    with compute.assert_debug_log(["testament has no stake behind it; ignored"], timeout=40):
        forger.peer.send(forger.free_testament(bytes.fromhex(job)[::-1]))
        wait_until(lambda: len(compute.getjob(job)["testaments"]) == 1, what="the free testament")
        miner.generatetoaddress(1, mine_to)
    wait_until(lambda: client.getjob(job)["verdict"] is not None, timeout=40, what="the verdict")
    info = client.getjob(job)
    assert info["verdict"] == "verified" and info["paid_node"] == compute.getnetworkinfo()["nodeid"]
    forger.close()


def test_a_free_testament_first_does_not_keep_the_client_from_paying_a_staked_one(camelid_nodes, tmp_path):
    """The client weighs every valid testament: once, the first one it saw was the only one it looked at, and
    a free testament ahead of a staked one left the job unpaid."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    miner, (client,), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}", "--nocompute"]])
    forger = Forger(client, "127.0.0.10")
    staker = HostileComputeNode(miner, mine_to, client, "127.0.0.26")  # it stakes for real; what it delivers is moot
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD, 60)
    forger.next_job()
    forger.peer.send(forger.free_testament(bytes.fromhex(job)[::-1]))
    wait_until(lambda: len(client.getjob(job)["testaments"]) == 1, what="the free testament at the client")
    staker.wait_payment(staker.take(COIN), timeout=30)
    assert client.getjob(job)["paid_node"] == staker.node_id.hex()
    forger.close()
    staker.close()


def in_pool(node: TestNode, job: str) -> bool:
    """Whether `node`'s job pool holds `job` (a job is admitted only once its escrow is seen)."""
    try:
        node.getjob(job)
    except JSONRPCError:
        return False
    return True
