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
from tiny_model import write_tiny_model

from camelid.chain.jobpool import job_offer_digest
from camelid.compute.engine import Engine
from camelid.compute.tamper import tamper_output
from camelid.core.consensus import COIN
from camelid.core.job import MAX_JOB_TOKENS, JobParams
from camelid.core.jobscripts import JOB_PAYOUT_FEE_CAP
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs import PAYMENT_FEE, SLASH_FEE
from camelid.p2p.messages import JobMessage
from camelid.rpc.client import JSONRPCError

from .framework import TestNode, wait_until
from .hostile_compute import HostileComputeNode
from .jobnet import funded_network, job_network, mine_until
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


def test_a_cheating_node_loses_its_stake_and_the_reward_to_a_fraud_proof(camelid_nodes, tmp_path):
    """The cheater (tests/functional/hostile_compute.py) stakes for real and delivers the output it committed
    to, with one token swapped for the model's least likely one: the client, holding the model, slashes it."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    miner, (client,), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}", "--nocompute"]])
    cheater = HostileComputeNode(miner, mine_to, client, "127.0.0.25")
    with Engine(model, n_threads=1, n_ctx=512) as engine:
        prompt = engine.tokenize("The llama")
        tampered = tamper_output(engine, prompt, engine.generate(prompt, 8))
    # A client that holds the model counts the prompt's tokens: with them, the job must fit one delivery on chain.
    with pytest.raises(JSONRPCError, match="cannot be delivered: its prompt's [0-9]+ tokens and max_tokens 2308"):
        client.submitjob("The llama", MAX_JOB_TOKENS, None, 0, 0, REWARD)
    # The default 600 s delivery deadline keeps the stake out of the cheater's reach during the test.
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD)
    escrowed = client.getbalance()  # 10 - REWARD - the escrow transaction's fee
    work = cheater.take(COIN, tampered, prompt)
    cheater.wait_payment(work)
    cheater.deliver(work, cheater.seal(work, tampered, prompt))
    # The client publishes the payment when it pays, which waits for the dispute window in median time past: mine.
    mine_until(miner, mine_to, lambda: client.getjob(job)["state"] == "slashed", "the fraud proof in the mempool")
    mine = client.getjob(job)
    history = states(client, job)  # the client publishes its payment when it pays: it may be mined (settled) early
    assert history[-1] == "slashed" and history.index("paid") < history.index("delivered")
    # Disputed, and settled too if the payment was mined before the slash, in either order.
    assert "disputed" in history and set(history[history.index("delivered") + 1 : -1]) <= {"disputed", "settled"}
    assert mine["verdict"].startswith("failed: RASTiC rejected") and mine["slash_txid"]
    with pytest.raises(JSONRPCError, match="job-proof-unverifiable"):  # the miner cannot measure the gap
        miner.sendrawtransaction(client.getrawtransaction(mine["slash_txid"]))
    # So the client mines the block; the miner, without the model, accepts it (the asymmetric rule).
    client.generatetoaddress(1, mine_to)
    tip = client.getbestblockhash()
    wait_until(lambda: miner.getbestblockhash() == tip, what="the slash block at the miner")
    assert mine["slash_txid"] in miner.getblock(tip)["tx"]
    assert miner.gettxout(work.stake_txid[::-1].hex(), 0) is None  # the stake is gone
    assert client.getjob(job)["state"] == "slashed"
    # The client gets the stake and the reward back, less the payment's and the fraud proof's fees.
    returned = 2 * REWARD - Decimal(PAYMENT_FEE + SLASH_FEE) / 10**8
    wait_until(lambda: client.getbalance() == escrowed + returned, what="the stake and the reward in the client wallet")
    cheater.close()


def test_a_peer_sending_a_job_its_client_did_not_sign_is_discouraged(camelid_nodes):
    (node,) = camelid_nodes(1)
    client, forger = PrivateKey.generate(), PrivateKey.generate()
    job = JobParams(b"\x01" * 32, "llamas", 8, 0, 0, int(time.time()), 600, client.public_key.to_bytes(), "", 1)
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
