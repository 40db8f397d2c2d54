"""Outsourced RASTiC between real processes: a client without the model has a neighbour check its delivery.

The client holds no model; the compute node and a verifier node (--nocompute) hold the tiny model. The client
(--verifiers=1: one verifier must pass it) asks the verifier, never the node that computed the job, and
accepts only a verdict signed by the node it asked over the hash of the exact tokens; the verifier answers
only for a job in its pool whose testament carries the commitment. Without the model file the client shows
the verified tokens, never a text it cannot read itself. A tampered output failed by a verifier is in
test_job_cheaters.py (with a sybil that passes it).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from tiny_model import write_tiny_model

from .framework import wait_until

pytestmark = pytest.mark.slow


def test_a_client_without_the_model_gets_a_signed_verdict_on_its_tokens_from_a_verifier(camelid_nodes, tmp_path):
    model = write_tiny_model(tmp_path / "tiny.gguf")
    (miner,) = camelid_nodes(1)
    connect = f"--connect=127.0.0.1:{miner.p2p_port}"
    compute, verifier = camelid_nodes(
        2, [[connect, f"--serve-model={model}"], [connect, f"--serve-model={model}", "--nocompute"]]
    )
    (client,) = camelid_nodes(1, [[connect, f"--connect=127.0.0.1:{verifier.p2p_port}", "--verifiers=1"]])
    wait_until(lambda: miner.getconnectioncount() == 3 and client.getconnectioncount() == 2, what="the network")
    for node in (miner, client, compute, verifier):
        node.createwallet("default")
    miner.generatetoaddress(101, miner.getnewaddress())
    for node in (client, compute, verifier):  # the verifier could pay a stake, but --nocompute takes no jobs
        miner.sendtoaddress(node.getnewaddress(), 5)
    miner.generatetoaddress(1, miner.getnewaddress())
    wait_until(lambda: all(node.getbalance() == 5 for node in (client, compute, verifier)), what="funds")
    model_id = compute.listmodels()[0]["id"]

    job = client.submitjob("The llama", 8, model_id, 0, 0, Decimal(1))
    wait_until(lambda: client.getjob(job)["verdict"] is not None, timeout=60, what="the verifier's verdict")
    mine = client.getjob(job)
    assert mine["verdict"] == "verified", mine["verdict"]
    assert mine["checked_by"] == [verifier.getnetworkinfo()["nodeid"]]  # never the node that computed it
    assert mine["state"] == "verified" and mine["text"] is None and len(mine["tokens"]) > 0
    assert verifier.getjob(job)["role"] == "observer"  # it holds the model and a wallet, but --nocompute
    assert mine["paid_node"] == compute.getnetworkinfo()["nodeid"]
