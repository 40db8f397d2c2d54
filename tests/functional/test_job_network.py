"""The end-to-end job test of issue 6: every role on one regtest network of real processes on 127.0.0.1.

A miner without the model, a client, two honest compute nodes, a verifier that holds the model but no
wallet, and later a cheating compute node (--misbehave=tamper-output), all on the tiny test model:

- two jobs at once are spread over the honest nodes, verified, paid and settled, and every wallet ends
  exactly where reward, stake and fees put it;
- the cheater's job is caught by RASTiC and disputed in the RASTiC game; the cheater has no valid answer, so
  its stake and the reward go to the client by the game's timeout, which the model-less miner mines and the
  verifier (holding the model) follows;
- per-job verification: spot and off.

The other Table 1 outcomes (a client that never pays, a node that never delivers) run in
test_job_disputes.py, restarts mid-job in test_job_restart.py, a client without the model in
test_job_verifiers.py: each needs its own timing, and all of them use the same real processes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from tiny_model import write_tiny_model

from camelid.node.jobs import PAYMENT_FEE
from camelid.node.jobs.client import OPEN_FEE
from camelid.node.jobs.common import DELIVERY_FEE, RELEASE_FEE
from camelid.rpc.client import JSONRPCError

from .framework import TestNode, wait_until
from .jobnet import fee_of, mine_until

pytestmark = pytest.mark.slow

COIN = Decimal(10**8)
FUNDS = Decimal(10)
REWARD = Decimal(1)
TIMELOCK = 30
"""The stake comes back at t0 + 30 + 5 s, within the test. No shorter: the regtest chain's median time past runs
~15 s ahead of the clock after the funding blocks, and a delivery must be mined while it is before D."""
RELEASE = RELEASE_FEE / COIN


def states(node: TestNode, job: str) -> list[str]:
    return [entry["state"] for entry in node.getjob(job)["history"]]


def test_paid_jobs_on_a_network_of_every_role(camelid_nodes, tmp_path):
    model = write_tiny_model(tmp_path / "tiny.gguf")
    (miner,) = camelid_nodes(1)
    connect, serve = f"--connect=127.0.0.1:{miner.p2p_port}", f"--serve-model={model}"
    client, honest_a, honest_b, verifier = camelid_nodes(
        4, [[connect, serve], [connect, serve], [connect, serve], [connect, serve, "--disablewallet"]]
    )
    wait_until(lambda: miner.getconnectioncount() == 4, what="every node connected to the miner")
    for node in (miner, client, honest_a, honest_b):
        node.createwallet("default")
    mine_to = miner.getnewaddress()
    miner.generatetoaddress(101, mine_to)
    for node in (client, honest_a, honest_b):
        miner.sendtoaddress(node.getnewaddress(), FUNDS)
    miner.generatetoaddress(1, mine_to)
    for node in (client, honest_a, honest_b):
        wait_until(lambda node=node: node.getbalance() == FUNDS, what=f"node{node.index} funded")

    # 1. Two jobs at once, spread over the two honest nodes.
    with ThreadPoolExecutor(2) as pool:
        jobs = list(pool.map(lambda i: client.submitjob(f"llama {i}", 8, None, i, 0, REWARD, TIMELOCK), range(2)))
    wait_until(lambda: all(client.getjob(job)["verdict"] for job in jobs), timeout=60, what="both verdicts")
    honest = {node.getnetworkinfo()["nodeid"]: node for node in (honest_a, honest_b)}
    computed_by = {job: honest[client.getjob(job)["paid_node"]] for job in jobs}
    for job in jobs:
        mine = client.getjob(job)
        assert mine["verdict"] == "verified" and mine["text"] and mine["checked_by"] == []
        assert states(client, job) == ["created", "accepted", "completed", "paid", "delivered", "verified"]
        assert computed_by[job].getjob(job)["role"] == "compute"
        watched = verifier.getjob(job)  # a node without a wallet tracks every job too
        assert watched["role"] == "observer" and watched["delivered_by"] == [mine["paid_node"]]
    mine_until(
        miner,
        mine_to,
        lambda: all(node.getjob(job)["state"] == "settled" for job in jobs for node in (client, verifier)),
        "settled",
    )

    # Exactly reward and fees: the client paid each reward and its escrow's fee; each node got the reward less
    # the payment's fee (the PAYOUT holds reward - PAYMENT_FEE), paid its stake's fee, its delivery's fee and two
    # release fees.
    escrow_fees = sum(fee_of(client, client.getjob(job)["escrow_txid"]) for job in jobs)
    assert client.getbalance() == FUNDS - 2 * REWARD - escrow_fees
    for node_id, node in honest.items():
        mine_jobs = [job for job in jobs if client.getjob(job)["paid_node"] == node_id]
        stake_fees = sum(
            fee_of(node, testament["stake_txid"])
            for job in mine_jobs
            for testament in node.getjob(job)["testaments"]
            if testament["node"] == node_id
        )
        expected = FUNDS + len(mine_jobs) * (REWARD - (PAYMENT_FEE + DELIVERY_FEE) / COIN - 2 * RELEASE) - stake_fees
        mine_until(
            miner,
            mine_to,
            lambda node=node, expected=expected: node.getbalance() == expected,
            f"node{node.index}'s releases",
        )

    # 2. A cheater: it alone serves now. RASTiC catches it, the client takes its stake and the reward back.
    honest_a.stop()
    honest_b.stop()
    (cheater,) = camelid_nodes(1, [[connect, serve, "--misbehave=tamper-output"]])
    cheater.createwallet("default")
    miner.sendtoaddress(cheater.getnewaddress(), FUNDS)
    miner.generatetoaddress(1, mine_to)
    wait_until(lambda: cheater.getbalance() == FUNDS, what="the cheater funded")
    before = client.getbalance()
    cheated = client.submitjob("llama 2", 8, None, 2, 0, REWARD)  # 1,800 s deadline: the stake stays at stake
    # The client publishes the payment itself, which waits for the dispute window in median time past, then opens
    # the dispute game (move 0): mine.
    mine_until(
        miner, mine_to, lambda: (client.getjob(cheated).get("game") or {}).get("stage") == "challenged", "move 0"
    )
    mine = client.getjob(cheated)
    assert (
        mine["verdict"].startswith("failed: RASTiC rejected")
        and mine["paid_node"] == cheater.getnetworkinfo()["nodeid"]
    )
    # The cheater holds the model, but its reference pass agrees with the challenge: it has no valid answer. The
    # model-less miner mines move 0 and, n_move blocks later, the client's timeout; the verifier follows.
    mine_until(miner, mine_to, lambda: client.getjob(cheated)["state"] == "slashed", "the game's timeout mined")
    mine = client.getjob(cheated)
    wait_until(lambda: (cheater.getjob(cheated).get("game") or {}).get("outcome") == "slashed", what="the cheater")
    assert cheater.getjob(cheated)["state"] == "slashed"
    tip = miner.getbestblockhash()
    wait_until(lambda: verifier.getbestblockhash() == tip, what="the slash block everywhere")
    assert verifier.getrawtransaction(mine["slash_txid"], True)["confirmations"] > 0
    escrow_fee = fee_of(client, mine["escrow_txid"])
    slashed = before - REWARD - escrow_fee + 2 * REWARD - (PAYMENT_FEE + OPEN_FEE + RELEASE_FEE) / COIN
    # The cheater delivered on chain, so the game holds its stake less the delivery's fee (or the STAKE itself, when
    # move 0 reached the mempool before the delivery did); the wallet paid a few hundred units to fund the bond.
    mine_until(
        miner,
        mine_to,
        lambda: slashed - DELIVERY_FEE / COIN - Decimal("0.0001") < client.getbalance() <= slashed,
        "the stake and the reward back",
    )
    assert cheater.getbalance() < FUNDS - REWARD  # its stake is gone

    # 3. Verification per job: spot checks a sample of positions; off returns the text unchecked.
    cheater.stop()
    honest_a.start()  # its journal brings back its two jobs; it serves again
    wait_until(lambda: honest_a.getbestblockhash() == miner.getbestblockhash(), what="an honest node back in sync")
    spot = client.submitjob("llama 3", 8, None, 3, 0, REWARD, TIMELOCK, "spot")
    off = client.submitjob("llama 4", 8, None, 4, 0, REWARD, TIMELOCK, "off")
    wait_until(lambda: client.getjob(spot)["verdict"] and client.getjob(off)["verdict"], timeout=60, what="verdicts")
    assert client.getjob(spot)["verdict"] == "verified"
    assert client.getjob(off)["verdict"] == "unverified: verification switched off for this job"
    assert client.getjob(off)["text"]
    with pytest.raises(JSONRPCError, match="verify must be one of full, spot, off"):
        client.submitjob("llama 5", 8, None, 5, 0, REWARD, TIMELOCK, "sometimes")
    roles = {entry["jobid"]: entry["role"] for entry in honest_a.listjobs()}
    assert [roles[job] for job in jobs] == ["compute" if computed_by[job] is honest_a else "observer" for job in jobs]
