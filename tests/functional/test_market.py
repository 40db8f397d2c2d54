"""The compute market over real processes (issue 16): a provider's --min-price, its announcement to peers,
estimatejobreward, a job declined for its price and reported untaken with the going reward, and a job
submitted at the default (estimated) reward taken, computed and paid, as getcomputeinfo counts."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from tiny_model import write_tiny_model

from camelid.node.jobs.scheduler import patience
from camelid.rpc.auth import read_cookie

from .framework import wait_until
from .jobnet import FUNDS, funded_network

pytestmark = pytest.mark.slow

MAX_TOKENS = 8
PRICE = Decimal("0.5")  # coins per 1,000 output tokens: 0.004 coins for 8 tokens


def test_a_provider_prices_its_compute_and_clients_read_the_market(camelid_nodes, tmp_path):
    model_file = write_tiny_model(tmp_path / "tiny.gguf")
    flags = [f"--serve-model={model_file}", f"--min-price={PRICE}"]
    miner, (compute,), mine_to = funded_network(camelid_nodes, [flags])
    # Prices reach direct peers only: the client connects to the compute node as well as to the miner.
    peers = [f"--connect=127.0.0.1:{node.p2p_port}" for node in (miner, compute)]
    (client,) = camelid_nodes(1, [[*peers, f"--serve-model={model_file}", "--nocompute"]])  # verifies, sells nothing
    client.createwallet("default")
    miner.sendtoaddress(client.getnewaddress(), FUNDS)
    miner.generatetoaddress(1, mine_to)
    wait_until(lambda: client.getbalance() == FUNDS, what="the client funded")
    compute_id = compute.getnetworkinfo()["nodeid"]
    model = compute.getcomputeinfo()["models"][0]["model_id"]
    assert compute.getcomputeinfo()["market"]["price"] == PRICE
    estimate = wait_until(
        lambda: (e := client.estimatejobreward(model, MAX_TOKENS))["providers"] and e, what="the compute node's price"
    )
    assert estimate["providers"] == {compute_id: PRICE} and estimate["basis"] == "announced"
    assert estimate["announced_rate"] == PRICE and estimate["reward"] == Decimal("0.004")
    assert compute.estimatejobreward(model, MAX_TOKENS)["basis"] == "fallback"  # its own price is no offer

    # Too cheap: declined for its price and, by its take-by time, reported untaken with the going reward.
    timelock = 12
    with compute.assert_debug_log(["declined: its reward 100000 for 8 tokens is below our price of 50000000"]):
        cheap = client.submitjob("The llama", MAX_TOKENS, model, 0, 0, Decimal("0.001"), timelock)
        info = client.waitforjob(cheap, 1, timelock)
    assert info["untaken"]["offered"] == 100_000 and info["untaken"]["going_reward"] == 400_000
    assert float(info["take_by"]) == pytest.approx(info["timestamp"] + timelock - patience(MAX_TOKENS))
    assert compute.getcomputeinfo()["market"]["declined"] == {"price": 1}

    # The default reward is the estimate: taken, paid, verified.
    job = client.submitjob("The llama", MAX_TOKENS, model, 0, 0, None, 30)  # the delivery is mined before D
    wait_until(lambda: client.getjob(job)["state"] in ("verified", "disputed"), timeout=40, what="the verdict")
    assert client.getjob(job)["reward"] == 400_000
    market = wait_until(lambda: (m := compute.getcomputeinfo()["market"])["earned"] > 0 and m, what="earnings")
    assert market["taken"] == 1 and 0 < market["tokens_computed"] <= MAX_TOKENS
    assert Decimal("0.0038") <= market["earned"] <= Decimal("0.004") and market["staked"] == Decimal("0.004")
    capped = client.submitjob("The llama", MAX_TOKENS, model, 0, 0, None, 10, "off", Decimal("0.002"))
    assert client.getjob(capped)["reward"] == 200_000

    # /v1 caps the estimate with camelid_max_reward (the job is below the price: nobody answers in time).
    key = read_cookie(client.net_datadir).password
    api = openai.OpenAI(base_url=f"http://127.0.0.1:{client.rpc_port}/v1", api_key=key, max_retries=0, timeout=3)
    before = {job["jobid"] for job in client.listjobs()}
    with pytest.raises(openai.APITimeoutError):
        api.completions.create(
            model=model, prompt="llamas", max_tokens=MAX_TOKENS, extra_body={"camelid_max_reward": 0.003}
        )
    (v1_job,) = {job["jobid"] for job in client.listjobs()} - before
    assert client.getjob(v1_job)["reward"] == 300_000
