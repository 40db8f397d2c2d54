"""No client can cheat a compute node (issue 13): each attack of a hostile client against a real camelidd.

The client is tests/functional/hostile.py: its own keys, funded by the miner, hand-built transactions and job
messages on the raw wire; nothing in the node under test cooperates. Each test runs one attack and shows the
rule that stops it (docs/jobs-design.md, "Attacks by a client"): without that rule the node delivers its
output for nothing, loses its stake, or locks more than its operator allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from tiny_model import write_tiny_model

from camelid.core.consensus import COIN
from camelid.core.job import MAX_JOB_TOKENS
from camelid.core.transaction import OutPoint, TxOut
from camelid.node.jobs.client import PAYMENT_FEE
from camelid.node.jobs.common import DELIVERY_FEE, RELEASE_FEE
from camelid.node.jobs.contract import NON_FINAL, Spent

from .framework import TestNode, wait_until
from .hostile import HostileClient, block_on_tip
from .jobnet import funded_network, mine_until

pytestmark = pytest.mark.slow

QUIET = 3.0
"""Seconds a refused payment is given to turn into a delivery anyway (a real one comes within milliseconds)."""


@pytest.fixture
def network(camelid_nodes, tmp_path) -> Iterator[Callable[..., tuple[HostileClient, TestNode]]]:
    """`network(*compute_flags)`: (the hostile client, the compute node it attacks, started with `compute_flags`)."""
    clients: list[HostileClient] = []

    def start(*compute_flags: str) -> tuple[HostileClient, TestNode]:
        model = write_tiny_model(tmp_path / "tiny.gguf")
        miner, (compute,), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}", *compute_flags]])
        clients.append(HostileClient.connect(miner, compute, mine_to))
        return clients[-1], compute

    yield start
    for client in clients:
        client.close()


def delivered(compute: TestNode, job: str) -> list[str]:
    return compute.getjob(job)["delivered_by"]


@pytest.mark.parametrize("trick", ["non-final", "outputs-above-inputs"])
def test_a_payment_that_can_never_be_mined_buys_no_output(network, trick):
    client, compute = network()
    job = client.submit()
    testament = client.testament(job)
    honest = client.payment(job, testament)
    if trick == "non-final":  # a lock time the chain never reaches while the payment waits
        unminable = client.escrow_spend(job, honest.outputs, lock_time=499_999_999, sequence=NON_FINAL)
        reason = "non-final"
    else:  # pays the node more than the escrow holds
        payout = honest.outputs[0].script_pubkey
        unminable = client.escrow_spend(job, (TxOut(job.escrow.out.value + COIN, payout),))
        reason = "bad-txns-in-belowout"
    with compute.assert_debug_log(["refusing payment", reason]):
        client.send_payment(job, unminable)
        assert client.delivery(job, QUIET) is None and delivered(compute, job.rpc_id) == []


def test_an_escrow_the_client_already_paid_to_itself_buys_no_output(network):
    client, compute = network()
    job = client.submit()
    testament = client.testament(job)
    self_payout = client.self_payout(job)
    client.admit(self_payout)  # in the mempools as soon as the dispute window lets it in
    wait_until(lambda: self_payout.txid() in compute.getrawmempool(), what="the self-payout at the compute node")
    with compute.assert_debug_log(["refusing payment", "txn-mempool-conflict"]):
        client.send_payment(job, client.payment(job, testament))
        assert client.delivery(job, QUIET) is None and delivered(compute, job.rpc_id) == []


def test_a_client_that_races_its_payment_with_a_self_payout_gets_no_output(network):
    """The client sends its payment to the node but has its own miner mine a self-payout the moment the dispute
    window allows, before the node's payment reaches that miner (the miner stops listening to the node: a
    miner the client runs, or pays, does the same). A node that delivered on the unmined payment was robbed."""
    client, compute = network("--compute-payment-confirmations=1")
    job = client.submit()
    testament = client.testament(job)
    client.miner.setban("127.0.0.1", "add")  # the compute node's connection to the client's miner
    with compute.assert_debug_log(["lost to another spend of the escrow; delivering nothing"], timeout=60):
        client.send_payment(job, client.payment(job, testament))
        client.admit(client.self_payout(job), mine=True)
        client.miner.setban("127.0.0.1", "remove")  # the node learns the block with the self-payout
        assert client.delivery(job, QUIET) is None and delivered(compute, job.rpc_id) == []
    assert delivered(compute, job.rpc_id) == []


def test_a_job_on_an_unconfirmed_escrow_waits_for_its_block(network):
    """An escrow still in the mempool can be double-spent by the client's miner, leaving the node's stake and
    work for a job nobody funds: with escrow confirmations the node computes only once the escrow is mined."""
    client, compute = network("--compute-escrow-confirmations=1")
    job = client.submit(timelock=60)
    with pytest.raises(TimeoutError):
        client.testament(job, timeout=QUIET)
    client.miner.generatetoaddress(1, client.mine_to)
    assert client.testament(job).job_id == job.job_id


def test_a_backdated_job_is_declined(network):
    """t0 eleven minutes back: the dispute window would already be closed, so a self-payout could be mined at once."""
    client, compute = network()
    with compute.assert_debug_log(["declined: its t0", "s in the past"]):
        job = client.submit(t0=int(time.time()) - 660, timelock=700)
        with pytest.raises(TimeoutError):
            client.testament(job, timeout=QUIET)


def test_a_job_that_would_lock_the_stake_for_decades_is_declined(network):
    client, compute = network()
    now = int(time.time())
    with compute.assert_debug_log(["declined: its timelock", "longer than our limit of 3600 s"]):
        job = client.submit(t0=now, timelock=2_500_000_000 - now)
        with pytest.raises(TimeoutError):
            client.testament(job, timeout=QUIET)


def test_a_job_whose_delivery_could_not_go_on_chain_is_declined(network):
    """max_tokens alone within MAX_JOB_TOKENS, but with the prompt's tokens the sealed commitment body would not
    fit one delivery scriptSig: the node counts them and declines before it stakes or generates."""
    client, compute = network()
    with compute.assert_debug_log(["declined: its prompt's", f"max_tokens {MAX_JOB_TOKENS} exceed"]):
        job = client.submit(max_tokens=MAX_JOB_TOKENS, timelock=300)  # time for 2,308 tokens (scheduler.patience)
        with pytest.raises(TimeoutError):
            client.testament(job, timeout=QUIET)


def test_stakes_above_the_limits_per_job_and_in_total_are_declined(network):
    client, compute = network("--compute-max-stake=1", "--compute-max-total-stake=1.5")
    with compute.assert_debug_log(["declined: its stake", "above our per-job limit 100000000"]):
        big = client.submit(reward=2 * COIN)
        with pytest.raises(TimeoutError):
            client.testament(big, timeout=QUIET)
    first = client.submit(reward=COIN)
    client.testament(first)  # taken: one coin staked
    with compute.assert_debug_log(["declined: its stake", "above 150000000"]):
        second = client.submit(reward=COIN)
        with pytest.raises(TimeoutError):
            client.testament(second, timeout=QUIET)


def test_a_wallet_that_relocks_after_staking_still_delivers(network):
    """The client waits with its payment until the compute node's wallet has relocked."""
    client, compute = network()
    compute.encryptwallet("llama")
    compute.walletpassphrase("llama", 600)
    job = client.submit()
    testament = client.testament(job)
    compute.walletlock()
    client.send_payment(job, client.payment(job, testament))
    assert client.delivery(job, 30) is not None
    wait_until(lambda: delivered(compute, job.rpc_id) == [compute.getnetworkinfo()["nodeid"]], what="the delivery")


def test_a_client_that_mines_cannot_claim_the_stake_of_a_node_that_delivered(network):
    """The client pays, receives the output, then mines past the deadline D and publishes a block of its own
    with its non-delivery claim on the stake and its payment: no mempool policy is asked. The node delivered on
    chain before D (its STAKE moved into the DELIVERED lock), so the claim spends nothing and the block is
    invalid, and a claim of the payment alone is invalid too; the node takes back its stake and its reward."""
    client, compute = network()
    job = client.submit(timelock=30)
    testament = client.testament(job)
    stake = client.stake(job, testament)
    staked = compute.getbalance()
    payment = client.payment(job, testament)
    payout = Spent(OutPoint(payment.hash, 0), payment.outputs[0])
    client.send_payment(job, payment)
    assert client.delivery(job, 30) is not None  # the client has what it paid for
    client.mine_until_median_time(job.terms.deadline)
    block = block_on_tip(client.miner, client.claim(job, stake, payout))  # the client's own block
    assert compute.submitblock(block.to_bytes().hex()) == "bad-txns-inputs-missingorspent"
    assert client.miner.submitblock(block.to_bytes().hex()) == "bad-txns-inputs-missingorspent"
    block = block_on_tip(client.miner, client.claim(job, payout))  # the payment back alone: the node delivered
    assert compute.submitblock(block.to_bytes().hex()) == "bad-job-claim"
    stake_back = Decimal(stake.out.value - DELIVERY_FEE - RELEASE_FEE) / COIN
    reward = Decimal(job.escrow.out.value - PAYMENT_FEE - RELEASE_FEE) / COIN
    mine_until(
        client.miner, client.mine_to, lambda: compute.getbalance() == staked + stake_back + reward,
        "the stake and the reward in the compute node's wallet",
    )
    assert compute.getjob(job.rpc_id)["state"] != "slashed"


def test_a_client_that_never_pays_cannot_take_the_stake_by_mining_its_claim(network):
    """The client never pays, mines past the deadline D and publishes a block of its own with its non-delivery
    claim on the stake. On the code before this rule the block was valid (only the mempool's job-not-paid
    policy refused the claim) and the node lost its stake; now a claim takes a STAKE only with its PAYOUT,
    mined before D - W, so the block is invalid and the node reclaims its stake at D + W."""
    client, compute = network()
    job = client.submit(timelock=30)
    testament = client.testament(job)
    stake = client.stake(job, testament)
    staked = compute.getbalance()
    client.mine_until_median_time(job.terms.deadline)
    block = block_on_tip(client.miner, client.claim(job, stake))
    assert compute.submitblock(block.to_bytes().hex()) == "bad-job-claim"
    assert client.miner.submitblock(block.to_bytes().hex()) == "bad-job-claim"
    stake_back = Decimal(stake.out.value - RELEASE_FEE) / COIN
    mine_until(
        client.miner, client.mine_to, lambda: compute.getbalance() == staked + stake_back,
        "the stake back in the compute node's wallet",
    )
    assert compute.getjob(job.rpc_id)["state"] != "slashed" and delivered(compute, job.rpc_id) == []
