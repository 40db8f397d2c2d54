"""No compute node or verifier can cheat a client into a verified job (issue 14): each attack on the real wire.

The cheaters are tests/functional/hostile_compute.py: a compute node that stakes for real (its STAKE funded
through the miner, its testament signed by its node key and Pn) and then delivers what it likes, and a sybil
verifier that claims the model and signs "pass" on anything. Each test runs one attack against real camelidd
processes and shows the rule that stops it (docs/jobs-design.md, "Attacks by a compute node, an impostor or a
verifier"), or the bound that holds.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal

import pytest
from tiny_model import write_tiny_model

from camelid.compute.engine import Engine
from camelid.compute.tamper import tamper_output
from camelid.core.consensus import COIN
from camelid.core.transaction import Transaction
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.client import PAYMENT_FEE, SLASH_FEE
from camelid.node.jobs.common import DELIVERY_FEE, RELEASE_FEE
from camelid.p2p.messages import JobPayment

from .framework import wait_until
from .hostile import block_on_tip
from .hostile_compute import HostileComputeNode, SybilVerifier
from .jobnet import funded_network, mine_until

pytestmark = pytest.mark.slow

REWARD = Decimal(1)
RELEASE = Decimal(RELEASE_FEE) / COIN  # fee of the client's claim on the stake and the payout
PAYMENT = Decimal(PAYMENT_FEE) / COIN


def verdict_of(client, job: str) -> dict:
    wait_until(lambda: client.getjob(job)["verdict"] is not None, timeout=60, what="the client's verdict")
    return client.getjob(job)


@pytest.mark.parametrize("sealed_to", ["garbage", "another key"])
def test_a_delivery_that_does_not_open_costs_the_node_its_stake(camelid_nodes, tmp_path, sealed_to):
    """The node staked and was paid, then put on chain (its STAKE moved into the DELIVERED lock, as an honest
    delivery does) bytes the client cannot open: random bytes, or the committed output sealed to another key.
    The job fails and shows nothing, and the client takes the DELIVERED output with the bad-delivery proof (its
    DLEQ reveal, or 97 zero bytes for a blob with no ephemeral key), which the model-less miner checks and mines:
    the node loses its stake, the client gets it (stake = reward, so its payment back)."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    miner, (client,), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}", "--nocompute"]])
    cheater = HostileComputeNode(miner, mine_to, client, "127.0.0.21")
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD, 30)
    escrowed = client.getbalance()
    work = cheater.take(COIN, [1, 2, 3], [5, 6]) if sealed_to == "another key" else cheater.take(COIN)
    cheater.wait_payment(work)
    other = PrivateKey.generate(network="regtest").public_key.to_bytes()
    sealed = bytes(1) + os.urandom(79) if sealed_to == "garbage" else cheater.seal(work, [1, 2, 3], [5, 6], to=other)
    cheater.deliver(work, sealed, on_chain=True)
    info = verdict_of(client, job)
    assert info["verdict"].startswith("failed: the delivery does not decrypt")
    assert info["text"] is None and info["tokens"] is None and info["delivered_by"] == [cheater.node_id.hex()]
    mine_until(miner, mine_to, lambda: client.getjob(job)["state"] == "slashed", "the bad-delivery proof mined")
    proof = miner.getrawtransaction(client.getjob(job)["slash_txid"], True)
    delivered = miner.getrawtransaction(proof["vin"][0]["txid"], True)
    assert delivered["vin"][0]["txid"] == work.stake_txid[::-1].hex()  # it spent the stake the node delivered
    assert miner.gettxout(proof["txid"], 0)["confirmations"] > 0
    back = escrowed + REWARD - Decimal(DELIVERY_FEE + SLASH_FEE) / COIN  # the DELIVERED output, less the two fees
    mine_until(miner, mine_to, lambda: client.getbalance() == back, "the stake in the wallet")
    cheater.close()


def test_a_sybil_verifier_that_passes_a_tampered_output_is_outvoted_by_one_honest_failure(camelid_nodes, tmp_path):
    """A client without the model needs --verifiers passes; any failure wins, so a sybil cannot pass a
    tampered output while one honest verifier among those asked fails it."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    (miner,) = camelid_nodes(1)
    connect = f"--connect=127.0.0.1:{miner.p2p_port}"
    (verifier,) = camelid_nodes(1, [[connect, f"--serve-model={model}", "--nocompute"]])
    (client,) = camelid_nodes(1, [[connect, f"--connect=127.0.0.1:{verifier.p2p_port}", "--verifiers=2"]])
    wait_until(lambda: client.getconnectioncount() == 2, what="the client connected")
    for node in (miner, client):
        node.createwallet("default")
    mine_to = miner.getnewaddress()
    miner.generatetoaddress(101, mine_to)
    miner.sendtoaddress(client.getnewaddress(), 5)
    miner.generatetoaddress(1, mine_to)
    wait_until(lambda: client.getbalance() == 5, what="the client funded")
    model_id = verifier.listmodels()[0]["id"]
    cheater = HostileComputeNode(miner, mine_to, client, "127.0.0.22")
    sybil = SybilVerifier(client, "127.0.0.23", bytes.fromhex(model_id))
    with Engine(model, n_threads=1, n_ctx=512) as engine:
        prompt = engine.tokenize("The llama")
        tampered = tamper_output(engine, prompt, engine.generate(prompt, 8))
    job = client.submitjob("The llama", 8, model_id, 0, 0, REWARD, 60)
    work = cheater.take(COIN, tampered, prompt)
    cheater.wait_payment(work)
    cheater.deliver(work, cheater.seal(work, tampered, prompt))
    sybil.answer_pass()
    info = verdict_of(client, job)
    verifier_id = verifier.getnetworkinfo()["nodeid"]
    assert re.fullmatch(rf"failed: verifier {verifier_id[:16]} rejected [1-8] of 8 positions", info["verdict"])
    assert info["state"] == "disputed" and info["text"] is None
    cheater.close()
    sybil.close()


def test_a_paid_node_that_never_delivers_loses_its_stake_to_the_client(camelid_nodes, tmp_path):
    """Paid, and nothing delivered on chain by D: the client, which published its payment when it paid, takes
    the stake and the payout back once the chain is past D, through their claim branches (consensus admits the
    claim because the payment was mined before D - W; the job's timelock leaves room for that). Bound: a node
    that bribes every miner to leave the claim out until D + W, when its own reclaims open, keeps both; one
    honest block in [D, D + W) is enough."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    miner, (client,), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}", "--nocompute"]])
    cheater = HostileComputeNode(miner, mine_to, client, "127.0.0.24")
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD, 30)
    escrowed = client.getbalance()
    cheater.wait_payment(cheater.take(COIN))
    mine_until(miner, mine_to, lambda: client.getjob(job)["state"] == "slashed", "the non-delivery claim")
    info = client.getjob(job)
    assert info["verdict"] == "failed: not delivered" and info["delivered_by"] == [] and not info["text"]
    mine_until(miner, mine_to, lambda: (miner.gettxout(info["slash_txid"], 0) or {}).get("confirmations", 0) > 0,
               "the claim mined")
    # The client took back its payment with the stake (stake = reward): it is out only the payment's fee and the
    # claim's.
    back = escrowed + 2 * REWARD - PAYMENT - RELEASE
    mine_until(miner, mine_to, lambda: client.getbalance() == back, "the stake and the payment in the wallet")
    cheater.close()


def test_a_bribed_miner_that_leaves_the_claim_out_only_delays_it(camelid_nodes, tmp_path):
    """Paid, never delivered, and the node pays a miner to leave the client's claim out of its blocks. The claim
    waits in the mempool through every bribed block and lands in the first honest one: the bound is one honest
    block in [D, D + W), before the node's own reclaim opens (docs/jobs-design.md, issue 14's attack table).
    The payment is mined by honest blocks first: a claim needs it mined before D - W (one honest block in
    [t0 + W, D - W) is the same kind of bound for a bribe that leaves the payment out)."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    miner, (client,), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}", "--nocompute"]])
    cheater = HostileComputeNode(miner, mine_to, client, "127.0.0.25")
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD, 30)
    escrowed = client.getbalance()
    directed = cheater.wait_payment(cheater.take(COIN))
    payment = Transaction.from_bytes(JobPayment.from_payload(directed.payload).tx).txid()
    mine_until(miner, mine_to, lambda: (miner.gettxout(payment, 0) or {}).get("confirmations", 0) > 0,
               "the payment mined")

    def bribed_block() -> None:
        assert miner.submitblock(block_on_tip(miner).to_bytes().hex()) is None

    def claim_published() -> bool:
        claim = client.getjob(job)["slash_txid"]
        if claim is not None and claim in miner.getrawmempool():
            return True
        bribed_block()  # the chain moves past D on bribed blocks alone
        return False

    wait_until(claim_published, timeout=90, interval=0.5, what="the client's claim in the miner's mempool")
    claim = client.getjob(job)["slash_txid"]
    for _ in range(3):
        bribed_block()
    assert claim in miner.getrawmempool() and miner.gettxout(claim, 0) is not None  # published, not mined
    assert client.getbalance() == escrowed
    miner.generatetoaddress(1, mine_to)  # one honest block
    wait_until(lambda: claim not in miner.getrawmempool(), timeout=30, what="the claim mined by the honest block")
    back = escrowed + 2 * REWARD - PAYMENT - RELEASE  # the stake and the payment
    mine_until(miner, mine_to, lambda: client.getbalance() == back, "the stake and the payment in the wallet")
    cheater.close()
