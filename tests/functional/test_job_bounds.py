"""Job spam against a real camelidd (issue 15): each attack through the raw peer, and the bound that holds.

A job message costs nothing to send, and every node used to keep and relay any validly signed one. Now a job
needs its escrow (a transaction that pays a fee and locks coins) before it is kept or relayed, and each peer
has a job rate. The honest peer (the miner) shows what would have been relayed.
"""

from __future__ import annotations

import time

import pytest
from tiny_model import write_tiny_model

from camelid.core.job import JobParams
from camelid.node.jobs.intake import JOB_BURST, JOBS_PER_SECOND
from camelid.p2p.messages import TxMessage

from .framework import TestNode, wait_until
from .hostile import UNSERVED_MODEL, escrowed_jobs, fraud_proofs, unfunded_job
from .p2p_raw import RawPeer

pytestmark = pytest.mark.slow

MAX_TOKENS = 4
PROOFS_SENT = 3
QUIET = 3.0
"""Seconds a refused job is given to show up anyway (a relayed one shows in milliseconds)."""


def network(camelid_nodes) -> tuple[TestNode, TestNode, str]:
    """(the node under attack, the miner it is connected to, the miner's address)."""
    (miner,) = camelid_nodes(1)
    (node,) = camelid_nodes(1, [[f"--connect=127.0.0.1:{miner.p2p_port}"]])
    wait_until(lambda: miner.getconnectioncount() == 1, what="the node connected to the miner")
    miner.createwallet("default")
    mine_to = miner.getnewaddress()
    miner.generatetoaddress(101, mine_to)
    return node, miner, mine_to


def attacker(node: TestNode, source: str) -> RawPeer:
    peer = RawPeer.connect(node.p2p_port, source)
    peer.handshake()
    return peer


def test_a_job_is_kept_and_relayed_only_once_its_escrow_is_seen(camelid_nodes):
    node, miner, mine_to = network(camelid_nodes)
    peer = attacker(node, "127.0.0.21")
    assert peer.node_id is not None
    for _ in range(20):
        peer.send(unfunded_job(peer.node_id))
    (funded,) = escrowed_jobs(miner, mine_to, peer.node_id, 1, UNSERVED_MODEL)
    peer.send(funded)  # its escrow is in the miner's mempool, on its way to the node
    rpc_id = JobParams.from_bytes(funded.params).job_id()[::-1].hex()
    wait_until(lambda: [j["jobid"] for j in node.listjobs()] == [rpc_id], what="the funded job kept")
    wait_until(lambda: [j["jobid"] for j in miner.listjobs()] == [rpc_id], what="the funded job relayed")
    time.sleep(QUIET)
    assert len(node.listjobs()) == len(miner.listjobs()) == 1  # the 20 free jobs are nowhere
    assert not peer.closed_by_node(timeout=0.5)  # a job whose escrow has not come is no misbehaviour
    peer.close()


def test_a_peer_cannot_send_jobs_faster_than_its_rate(camelid_nodes):
    node, miner, mine_to = network(camelid_nodes)
    peer = attacker(node, "127.0.0.22")
    assert peer.node_id is not None
    count = int(JOB_BURST) + 100
    jobs = escrowed_jobs(miner, mine_to, peer.node_id, count, UNSERVED_MODEL)
    wait_until(lambda: node.getmempoolinfo()["size"] >= 1, what="the escrows at the node")
    started = time.monotonic()
    with node.assert_debug_log(["sends jobs faster than"]):
        for job in jobs:
            peer.send(job)
        time.sleep(QUIET)
    allowed = JOB_BURST + JOBS_PER_SECOND * (time.monotonic() - started + 1)
    kept = len(node.listjobs())
    assert JOB_BURST <= kept <= allowed < count
    wait_until(lambda: len(miner.listjobs()) == kept, what="the jobs within the rate relayed")
    peer.close()


def test_a_peer_sending_fraud_proofs_that_open_no_game_is_discouraged(camelid_nodes, tmp_path):
    """A fraud proof used to cost a model-holding node a ~2,000-token check. Now move 0 runs no model: a fraud-proof
    spend whose output 0 is not the GAME it must open (here a key's) is refused at once, as bad-job-proof, by a
    node without the model, and its sender is discouraged at the first."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    (node,) = camelid_nodes(1)
    proofs = fraud_proofs(node, model, lambda honest, i: honest, PROOFS_SENT, MAX_TOKENS)
    peer = attacker(node, "127.0.0.23")
    expected = ["protocol violation (invalid-tx: bad-job-proof", "127.0.0.23 discouraged"]
    with node.assert_debug_log(expected, timeout=60):
        for proof in proofs:
            peer.send(TxMessage(proof.to_bytes()))
        assert peer.closed_by_node(timeout=60)
    peer.close()
    assert node.getrawmempool() == []

