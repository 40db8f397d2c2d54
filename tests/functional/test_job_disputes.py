"""Table 1's other outcomes over real processes: a client that never pays, a node that never delivers, and the
consensus rules that keep a client from taking the stake of a node that delivered or was never paid.

Each network is a miner without the model, a client and a compute node with the tiny test model
(jobnet.job_network); the regtest --misbehave=never-pay flag makes the client cheat (a node that never
delivers is in test_job_cheaters.py). Jobs get a 12 s delivery
deadline D, so the refund time D + W (W = 5 s on regtest) falls within the test.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from camelid.core.jobscripts import claim_script_sig, stake_script
from camelid.core.params import REGTEST
from camelid.core.script import p2pkh_script
from camelid.core.transaction import SIGHASH_ALL, Transaction, TxIn, TxOut
from camelid.crypto.address import hash160_to_address
from camelid.crypto.hashes import hash160
from camelid.crypto.keys import PrivateKey, decode_wif
from camelid.node.jobs.common import RELEASE_FEE
from camelid.node.jobs.contract import NON_FINAL
from camelid.rpc.client import JSONRPCError

from .framework import TestNode, wait_until
from .jobnet import job_network, mine_until

pytestmark = pytest.mark.slow

REWARD = Decimal(1)
TIMELOCK = 30
"""No shorter: the regtest chain's median time past runs ~15 s ahead of the clock after the funding blocks, and a
delivery must be mined while it is before D."""
COIN = Decimal(10**8)
RELEASE = RELEASE_FEE / COIN  # fee of each one-input time-locked spend: refund, reclaim, release, claim


def states(node: TestNode, job: str) -> list[str]:
    return [entry["state"] for entry in node.getjob(job)["history"]]


def stake_claim(client: TestNode, job: str) -> Transaction:
    """The client's non-delivery claim on the job's stake, built here from its wallet's key Pc: what a client
    that wanted the stake without cause would broadcast. Valid by consensus once the median time past is past D."""
    info = client.getjob(job)
    (testament,) = info["testaments"]
    client_pubkey = bytes.fromhex(info["client_pubkey"])
    job_id = bytes.fromhex(job)[::-1]
    deadline = info["timestamp"] + info["timelock"]
    script = stake_script(
        job_id,
        bytes.fromhex(testament["node_pubkey"]),
        client_pubkey,
        bytes.fromhex(testament["commitment"]),
        bytes.fromhex(info["model"]),
        info["timestamp"],
        deadline,
        deadline + REGTEST.dispute_window,
    )
    stake_txid = testament["stake_txid"]

    def stake_output() -> tuple[int, int] | None:  # the testament can outrun the stake transaction's relay
        try:  # the stake transaction, in the mempool or a block, whether or not a delivery spent the stake since
            stake_tx = Transaction.from_bytes(bytes.fromhex(client.getrawtransaction(stake_txid, False)))
        except JSONRPCError:
            return None
        return next(
            ((i, out.value) for i, out in enumerate(stake_tx.outputs) if out.script_pubkey == script), None
        )

    index, value = wait_until(stake_output, what="the stake transaction at the client")
    address = hash160_to_address(hash160(client_pubkey), "regtest")
    key = PrivateKey.from_bytes(decode_wif(client.dumpprivkey(address)).secret)
    outputs = (TxOut(value - RELEASE_FEE, p2pkh_script(hash160(client_pubkey))),)
    txin = TxIn(bytes.fromhex(stake_txid)[::-1], index, sequence=NON_FINAL)
    unsigned = Transaction(inputs=(txin,), outputs=outputs, lock_time=deadline, job_id=job_id)
    signature = key.sign(unsigned.signature_hash(0, script, value, SIGHASH_ALL)) + bytes([SIGHASH_ALL])
    signed = TxIn(txin.prev_txid, index, claim_script_sig(signature), NON_FINAL)
    return Transaction(inputs=(signed,), outputs=outputs, lock_time=deadline, job_id=job_id)


def claim_refusal(miner: TestNode, claim: Transaction, mine_to: str) -> str:
    """The miner's mempool's reason for refusing `claim`, mining blocks while its lock time D is not yet final."""

    def refusal() -> str | None:
        try:
            miner.sendrawtransaction(claim.to_bytes().hex())
        except JSONRPCError as exc:
            if "non-final" not in str(exc):
                return str(exc)
        else:
            return "accepted"
        miner.generatetoaddress(1, mine_to)
        return None

    return wait_until(refusal, timeout=30, interval=0.2, what="the claim's lock time to be final")


def test_a_client_that_never_pays_gets_its_escrow_back_and_the_node_its_stake(camelid_nodes, tmp_path):
    miner, client, compute, mine_to = job_network(camelid_nodes, tmp_path, client_flags=["--misbehave=never-pay"])
    start = client.getbalance()
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD, TIMELOCK)
    escrowed = client.getbalance()  # start - REWARD - the escrow transaction's fee
    wait_until(lambda: client.getjob(job)["testaments"], timeout=30, what="the node's testament")
    staked = compute.getbalance()  # 10 - the stake - the stake transaction's fee
    # A client key alone cannot take the stake of a node it never paid: a claim needs the node's PAYOUT (consensus).
    assert "job-claim" in claim_refusal(miner, stake_claim(client, job), mine_to)
    mine_until(miner, mine_to, lambda: client.getjob(job)["state"] == "refunded", "the escrow refund")
    info = client.getjob(job)
    assert "paid" not in states(client, job) and info["refund_txid"] and info["slash_txid"] is None
    # The client is out only the escrow's and the refund's fees; the node only its stake's and reclaim's.
    # (The wallet counts a spend of a foreign output once it is mined.)
    refunded = escrowed + REWARD - RELEASE
    mine_until(miner, mine_to, lambda: client.getbalance() == refunded, "the refund in the client's wallet")
    escrow_fee = start - REWARD - escrowed
    assert client.getbalance() == start - escrow_fee - RELEASE and 0 < escrow_fee < Decimal("0.001")
    mine_until(miner, mine_to, lambda: compute.getbalance() == staked + REWARD - RELEASE, "the stake reclaimed")
    mine_until(miner, mine_to, lambda: miner.getjob(job)["state"] == "refunded", "the observer to see the refund mined")


def test_a_client_cannot_take_the_stake_of_a_node_that_delivered(camelid_nodes, tmp_path):
    miner, client, compute, mine_to = job_network(camelid_nodes, tmp_path)
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD, TIMELOCK)
    wait_until(lambda: client.getjob(job)["state"] == "verified", timeout=40, what="the verdict")
    node_id = compute.getnetworkinfo()["nodeid"]
    assert miner.getjob(job)["delivered_by"] == [node_id] and "delivered" in states(miner, job)
    (delivery,) = compute.getjob(job)["delivery_txids"]
    wait_until(lambda: miner.getjob(job)["delivery_txids"] == [delivery], what="the delivery transaction at the miner")
    miner.generatetoaddress(1, mine_to)  # mined before D: the stake is in its DELIVERED lock, out of the claim's reach
    # Paid and past D, but the stake is spent: the whitepaper's counter-proof is on chain.
    claim = stake_claim(client, job)
    assert "bad-txns-inputs-missingorspent" in claim_refusal(miner, claim, mine_to)
    with pytest.raises(JSONRPCError, match="bad-txns-inputs-missingorspent"):  # the client's own node as well
        client.sendrawtransaction(claim.to_bytes().hex())
    assert client.getjob(job)["verdict"] == "verified" and client.getjob(job)["slash_txid"] is None
