"""A paid job over real processes: client, compute node and miner on 127.0.0.1 with the consensus job contracts.

The client funds an ESCROW, the compute node (--serve-model) generates with the tiny test model, stakes and
publishes its testament, the client pays it with a directed payment, the node floods its output encrypted
to the client and signed, and the client verifies it with RASTiC. The payment can be mined only after the
regtest dispute window (5 s of median time past), so the test keeps mining until every node sees the job
settled.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from prompt_support import hidden

from camelid.chain.jobpool import job_offer_digest
from camelid.core.job import JobParams
from camelid.core.jobscripts import JOB_PAYOUT_FEE_CAP
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs import PAYMENT_FEE
from camelid.p2p.messages import JobMessage
from camelid.rpc.client import JSONRPCError

from .framework import TestNode, wait_until
from .jobnet import job_network
from .p2p_raw import RawPeer

pytestmark = pytest.mark.slow

REWARD = Decimal(1)


def states(node: TestNode, job: str) -> list[str]:
    return [entry["state"] for entry in node.getjob(job)["history"]]


def block_with(node: TestNode, txid: str) -> dict:
    height = node.getblockcount()
    while txid not in (block := node.getblock(node.getblockhash(height)))["tx"]:
        height -= 1
    return block


def test_an_honest_job_is_paid_delivered_verified_and_settled(camelid_nodes, tmp_path):
    miner, client, compute, mine_to = job_network(camelid_nodes, tmp_path)
    # A 30 s delivery deadline: the stake is back at t0 + 30 + 5 s, within the test. No shorter: the regtest
    # chain's median time past runs ~15 s ahead of the clock after the funding blocks, and the delivery must be
    # mined while it is before D.
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD, 30)
    wait_until(lambda: client.getjob(job)["state"] in ("verified", "disputed"), timeout=40, what="the verdict")
    mine = client.getjob(job)
    assert states(client, job) == ["created", "accepted", "completed", "paid", "delivered", "verified"]
    assert mine["role"] == "client" and mine["verdict"] == "verified" and mine["text"]
    (testament,) = mine["testaments"]
    assert mine["paid_node"] == testament["node"] == compute.getnetworkinfo()["nodeid"]
    work = compute.getjob(job)
    assert work["role"] == "compute" and work["state"] == "delivered"
    assert miner.getjob(job)["role"] == "observer"
    assert states(miner, job)[:3] == ["created", "accepted", "completed"]
    assert [(j["jobid"], j["role"]) for j in compute.listjobs()] == [(job, "compute")]
    with pytest.raises(JSONRPCError, match="already paid"):
        client.canceljob(job)
    with pytest.raises(JSONRPCError, match="not one this node submitted"):
        compute.canceljob(job)

    def mined(predicate) -> bool:
        miner.generatetoaddress(1, mine_to)
        time.sleep(0.3)
        return predicate()

    settled = lambda: all(node.getjob(job)["state"] == "settled" for node in (miner, client, compute))  # noqa: E731
    wait_until(lambda: mined(settled), timeout=30, interval=0.2, what="the payment mined after the dispute window")
    # The regtest chain's times run ahead of the clock after 102 quick blocks, so the window passes at once;
    # the rule itself is what is checked: the payment's block builds on a median time past of t0 + 5 or later.
    parent_mtp = miner.getblockheader(block_with(miner, work["payment_txid"])["previousblockhash"])["mediantime"]
    assert parent_mtp >= work["timestamp"] + 5
    payout = miner.gettxout(work["payment_txid"], 0)
    assert payout["value"] == REWARD - Decimal(PAYMENT_FEE) / 10**8
    assert REWARD * 10**8 - payout["value"] * 10**8 <= JOB_PAYOUT_FEE_CAP
    script = payout["scriptPubKey"]["hex"]
    assert testament["node_pubkey"] in script and testament["commitment"] in script
    # The node takes its PAYOUT after the pay time and its STAKE after the refund time, into its wallet.
    # the payment's 0.0002, the delivery's 0.0004, two release spends of 0.0001 and the stake transaction's fee
    fees = Decimal("0.002")
    assert len(compute.getjob(job)["delivery_txids"]) == 1  # the stake moved into its DELIVERED lock
    wait_until(
        lambda: mined(lambda: compute.getbalance() > 10 + REWARD - fees),
        timeout=70,
        interval=0.2,
        what="the reward and the stake back in the compute node's wallet",
    )
    assert compute.getbalance() < 10 + REWARD - Decimal(PAYMENT_FEE) / 10**8


def test_a_peer_sending_a_job_its_client_did_not_sign_is_discouraged(camelid_nodes):
    (node,) = camelid_nodes(1)
    client, forger = PrivateKey.generate(), PrivateKey.generate()
    job = JobParams(
        b"\x01" * 32, *hidden("llamas"), 8, 0, 0, int(time.time()), 600, client.public_key.to_bytes(), "", 1
    )
    origin = forger.public_key.to_bytes()
    signature = forger.sign(job_offer_digest(job.job_id(), b"\x02" * 32, origin))
    peer = RawPeer.connect(node.p2p_port, "127.0.0.3")
    peer.handshake()
    with node.assert_debug_log(["protocol violation (bad-job: bad-job-signature", "127.0.0.3 discouraged"]):
        peer.send(JobMessage(job.to_bytes(), b"\x02" * 32, origin, signature))
        assert peer.closed_by_node()
    peer.close()
    assert node.listjobs() == []


def test_a_job_cancelled_before_payment_stops_with_its_escrow_funded(camelid_nodes):
    (client,) = camelid_nodes(1)
    client.createwallet("default")
    client.generatetoaddress(101, client.getnewaddress())
    wait_until(lambda: client.getbalance() > 0, what="a mature coinbase")
    before = client.getbalance()
    job = client.submitjob("llamas", 8, "01" * 32, 0, 0.5, "0.25")
    assert client.getbalance() < before - Decimal("0.25")  # the escrow left the wallet
    client.canceljob(job)
    info = client.getjob(job)
    assert states(client, job) == ["created", "cancelled"] and info["temperature"] == 0.5
    assert client.listjobs() == [{"jobid": job, "state": "cancelled", "model": "01" * 32, "role": "client"}]
    with pytest.raises(JSONRPCError, match="temperature must be 0..2"):
        client.submitjob("llamas", 8, "01" * 32, 0, 2.5)
    with pytest.raises(JSONRPCError, match="not in the job pool"):
        client.getjob("00" * 32)
