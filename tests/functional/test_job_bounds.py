"""Job spam against a real camelidd (issue 15): each attack through the raw peer, and the bound that holds.

A job message costs nothing to send, and every node used to keep and relay any validly signed one. Now a job
needs its escrow (a transaction that pays a fee and locks coins) before it is kept or relayed, and each peer
has a job rate. The honest peer (the miner) shows what would have been relayed.
"""

from __future__ import annotations

import os
import time

import pytest

from camelid.chain.jobpool import job_offer_digest
from camelid.core.job import JobParams
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.intake import JOB_BURST, JOBS_PER_SECOND
from camelid.p2p.messages import JobMessage

from .framework import TestNode, wait_until
from .hostile import escrowed_jobs
from .p2p_raw import RawPeer

pytestmark = pytest.mark.slow

MODEL = b"\x5a" * 32
"""A model nobody serves: the jobs are only stored and relayed, never computed."""
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


def unfunded_job(client_node: bytes) -> JobMessage:
    """A job correctly signed by its client, naming an escrow that does not exist."""
    client = PrivateKey.generate(network="regtest")
    params = JobParams(MODEL, "free", 8, 0, 0, int(time.time()), 600, client.public_key.to_bytes(), "", 1)
    escrow = os.urandom(32)
    return JobMessage(params.to_bytes(), escrow, client_node, client.sign(job_offer_digest(params.job_id(), escrow,
                                                                                            client_node)))


def test_a_job_is_kept_and_relayed_only_once_its_escrow_is_seen(camelid_nodes):
    node, miner, mine_to = network(camelid_nodes)
    peer = attacker(node, "127.0.0.21")
    assert peer.node_id is not None
    for _ in range(20):
        peer.send(unfunded_job(peer.node_id))
    (funded,) = escrowed_jobs(miner, mine_to, peer.node_id, 1, MODEL)
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
    jobs = escrowed_jobs(miner, mine_to, peer.node_id, count, MODEL)
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
