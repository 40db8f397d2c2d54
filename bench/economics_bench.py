"""What a completion costs on this network, measured, next to the whitepaper's figures (2.5.5; issue 16).

1. Tokens/hour of one provider: gemma-3-270m (Q4_K_M) generating on this machine's CPU with llama.cpp (all
   --threads, one job at a time, as a compute node with --compute-slots=1), and with --gpu-layers where a GPU
   build finds a GPU. The whitepaper reports 30 tokens/s with GPU offloading and, from it, 39,600 tokens
   an hour (which is 11 tokens/s: its two figures disagree; its cost per 1,000 tokens uses 39,600).
2. The chain bytes and fees of one job, transaction by transaction: the client's escrow, the provider's
   stake, the client's payment, and the provider's two releases (STAKE and PAYOUT back into its wallet),
   from a real regtest job (tiny test model: the transactions do not depend on the model).
3. The seconds the client's and the provider's coins stay locked per job: measured on regtest (dispute
   window 5 s), and what the same job locks on mainnet (dispute window from its ChainParams).

    .venv/bin/python -m bench.economics_bench [--tokens 64] [--rounds 3] [--threads 1] [--gpu-layers 0]
        [--json PATH] [--plot docs/img/economics_cost.png]

--plot draws the electricity cost per 1,000 tokens against the rate, under the whitepaper's assumptions
(312 W, $0.17/kWh), with the whitepaper's point and the measured one (docs/economics.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.job_overhead_bench import start_network
from bench.rastic_common import prompts
from camelid.compute.engine import Engine
from camelid.compute.models import default_model_path
from camelid.core.params import MAINNET, REGTEST
from camelid.node.jobs import DEFAULT_TIMELOCK
from camelid.node.jobs.scheduler import patience
from tests.functional.framework import TestNode, wait_until
from tests.tiny_model import write_tiny_model

WHITEPAPER = {
    "tokens_per_second": 30,
    "tokens_per_hour": 39_600,
    "watts": 312,
    "usd_per_kwh": 0.17,
    "usd_per_1000_tokens": 0.00134,
}
"""Whitepaper 2.5.5: its measured rate (GPU offload), power draw, and the world-average electricity price."""
JOB_TOKENS = 8
JOB_TIMELOCK = 30
"""Seconds to deliver in the regtest job: short, so that its locks open within the bench, but past the ~15 s the
regtest median time past runs ahead of the clock after the funding blocks (the delivery must be mined before D)."""
REWARD = "0.01"


def tokens_per_hour(tokens: int, rounds: int, threads: int, gpu_layers: int) -> dict[str, Any]:
    """Output tokens per second of gemma-3-270m on this machine, median over `rounds` prompts (after a warm-up
    generation), and per hour; with the load average, since other processes' load slows llama.cpp a lot."""
    rates = []
    with Engine(default_model_path(), n_threads=threads, gpu_layers=gpu_layers) as engine:
        engine.generate(engine.tokenize("Warm up"), 4, 0, 0.0)
        for prompt in prompts(rounds):
            prompt_tokens = engine.tokenize(prompt)
            began = time.perf_counter()
            output = engine.generate(prompt_tokens, tokens, 0, 0.0)
            rates.append(len(output) / (time.perf_counter() - began))
    rate = statistics.median(rates)
    return {
        "threads": threads,
        "gpu_layers": gpu_layers,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "tokens_per_second": rate,
        "tokens_per_hour": rate * 3600,
    }


def _tx(node: TestNode, txid: str) -> dict[str, Any]:
    return node.getrawtransaction(txid, True)


def _fee(node: TestNode, tx: dict[str, Any]) -> Decimal:
    spent = sum(Decimal(_tx(node, i["txid"])["vout"][i["vout"]]["value"]) for i in tx["vin"])
    return spent - sum(Decimal(out["value"]) for out in tx["vout"])


def _spender(node: TestNode, txid: str, vout: int, from_height: int) -> dict[str, Any] | None:
    """The mined transaction spending txid:vout, looked for from `from_height` to the tip."""
    for height in range(from_height, node.getblockcount() + 1):
        for tx in node.getblock(node.getblockhash(height), 2)["tx"]:
            if any(i.get("txid") == txid and i.get("vout") == vout for i in tx["vin"]):
                return tx
    return None


def one_job(basedir: Path) -> dict[str, Any]:
    """A job from submitjob until the provider has both its stake (delivered on chain into the DELIVERED lock)
    and its PAYOUT back: each transaction's size and fee, and the seconds each side's coins were locked."""
    model = write_tiny_model(basedir / "tiny.gguf")
    miner, client, compute = start_network(basedir / "nodes", [model], 2)
    nodes = (miner, client, compute)
    try:
        mine_to = miner.getnewaddress()
        start_height = miner.getblockcount()
        submitted = time.time()
        job = client.submitjob("The llama", JOB_TOKENS, None, 0, 0, REWARD, JOB_TIMELOCK)
        wait_until(lambda: client.getjob(job)["state"] == "verified", timeout=120, what="the verdict")
        info = client.getjob(job)
        (testament,) = info["testaments"]
        (payment_txid,) = info["payment_txids"]
        stake_txid = testament["stake_txid"]
        (delivery_txid,) = compute.getjob(job)["delivery_txids"]

        def released() -> dict[str, Any] | None:
            miner.generatetoaddress(1, mine_to)
            time.sleep(0.5)
            stake_back = _spender(miner, delivery_txid, 0, start_height)
            payout_back = _spender(miner, payment_txid, 0, start_height)
            return {"stake": stake_back, "payout": payout_back} if stake_back and payout_back else None

        spends = wait_until(released, timeout=180, interval=1.0, what="the provider's releases mined")
        done = time.time()
        txs = {
            "escrow (client)": _tx(miner, info["escrow_txid"]),
            "stake (provider)": _tx(miner, stake_txid),
            "payment (client)": _tx(miner, payment_txid),
            "delivery (provider)": _tx(miner, delivery_txid),
            "stake release (provider)": spends["stake"],
            "payout release (provider)": spends["payout"],
        }
        paid_at = next(e["time"] for e in info["history"] if e["state"] == "paid")
        stake_made = next(e["time"] for e in compute.getjob(job)["history"] if e["state"] == "completed")
        return {
            "transactions": {name: {"bytes": tx["size"], "fee": _fee(miner, tx)} for name, tx in txs.items()},
            "client_locked_s": float(paid_at) - submitted,
            "provider_locked_s": done - float(stake_made),
            "timestamp": info["timestamp"],
        }
    finally:
        for node in reversed(nodes):
            node.teardown()


def mainnet_locks(compute_s: float) -> dict[str, float]:
    """Seconds a job locks coins on mainnet with submitjob's defaults, if it takes `compute_s` to be delivered:
    the client's escrow until it pays (at delivery), the provider's stake until D + W (and its reward as long)."""
    return {
        "client_escrow_s": compute_s,
        "provider_stake_s": DEFAULT_TIMELOCK + MAINNET.dispute_window,
        "client_escrow_unpaid_s": DEFAULT_TIMELOCK + MAINNET.dispute_window,
    }


def usd_per_1000_tokens(tokens_per_hour: float, watts: float = WHITEPAPER["watts"]) -> float:
    """Electricity per 1,000 tokens at `watts` and the whitepaper's price per kWh."""
    return watts / 1000 * WHITEPAPER["usd_per_kwh"] * 1000 / tokens_per_hour


def plot(measured_per_hour: float, path: Path) -> None:
    """Cost per 1,000 tokens against tokens/hour at the whitepaper's power and price, both points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [1_000 * 1.1**k for k in range(70)]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.loglog(rates, [usd_per_1000_tokens(r) for r in rates], color="gray", label="312 W at $0.17/kWh")
    paper = WHITEPAPER["tokens_per_hour"]
    ax.plot([paper], [usd_per_1000_tokens(paper)], "o", color="tab:blue", label=f"whitepaper: {paper:,} tokens/h")
    ax.plot(
        [measured_per_hour],
        [usd_per_1000_tokens(measured_per_hour)],
        "s",
        color="tab:red",
        label=f"measured here (CPU): {measured_per_hour:,.0f} tokens/h",
    )
    ax.set_xlabel("tokens per hour, one provider")
    ax.set_ylabel("USD of electricity per 1,000 tokens")
    ax.set_title("gemma-3-270m: cost per 1,000 tokens (whitepaper 2.5.5 assumptions)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64, help="output tokens per generation")
    parser.add_argument("--rounds", type=int, default=3, help="generations (distinct prompts)")
    parser.add_argument(
        "--threads", type=int, default=1, help="llama.cpp threads (more than the idle cores slows it down)"
    )
    parser.add_argument("--gpu-layers", type=int, default=0, help="layers offloaded to a GPU (-1: all)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--plot", type=Path, help="draw the cost per 1,000 tokens here (PNG)")
    args = parser.parse_args()

    rate = tokens_per_hour(args.tokens, args.rounds, args.threads, args.gpu_layers)
    where = "GPU" if args.gpu_layers else "CPU"
    print(f"1. gemma-3-270m Q4_K_M on this {where} ({rate['threads']} threads, gpu_layers={args.gpu_layers}; "
          f"{rate['cpus']} CPUs, load average {rate['load_average']:.1f})")
    print(f"   measured   {rate['tokens_per_second']:8.1f} tokens/s  {rate['tokens_per_hour']:12,.0f} tokens/hour")
    paper = WHITEPAPER
    print(f"   whitepaper {paper['tokens_per_second']:8.1f} tokens/s  {paper['tokens_per_hour']:12,} tokens/hour"
          " (its own figures: 30 tokens/s is 108,000/hour)")
    print(f"   electricity per 1,000 tokens at {paper['watts']} W and ${paper['usd_per_kwh']}/kWh (the whitepaper's "
          f"assumptions): measured rate ${usd_per_1000_tokens(rate['tokens_per_hour']):.5f}, whitepaper's rate "
          f"${usd_per_1000_tokens(paper['tokens_per_hour']):.5f} (it states ${paper['usd_per_1000_tokens']})")
    if args.plot:
        plot(rate["tokens_per_hour"], args.plot)

    with tempfile.TemporaryDirectory(prefix="camelid-economics-") as tmp:
        job = one_job(Path(tmp))
    print(f"2. one job's transactions (regtest, reward {REWARD}, {JOB_TOKENS} tokens; the whitepaper gives none)")
    total_bytes, total_fee = 0, Decimal(0)
    for name, tx in job["transactions"].items():
        print(f"   {name:26} {tx['bytes']:5} bytes  fee {tx['fee']:.8f}")
        total_bytes += tx["bytes"]
        total_fee += tx["fee"]
    print(f"   {'total':26} {total_bytes:5} bytes  fee {total_fee:.8f}")
    compute_s = JOB_TOKENS / rate["tokens_per_second"] + patience(0)
    locks = mainnet_locks(compute_s)
    print(f"3. seconds coins stay locked per job (regtest: timelock {JOB_TIMELOCK} s, dispute window "
          f"{REGTEST.dispute_window} s; the whitepaper gives none)")
    print(f"   regtest measured: client escrow until paid {job['client_locked_s']:7.1f} s, "
          f"provider stake until both releases mined {job['provider_locked_s']:7.1f} s")
    print(f"   mainnet (default timelock, dispute window {MAINNET.dispute_window} s): client escrow "
          f"~{locks['client_escrow_s']:.0f} s when paid at delivery ({locks['client_escrow_unpaid_s']} s if never "
          f"paid), provider stake and reward {locks['provider_stake_s']} s + the time to mine the releases")
    if args.json:
        figures = {"rate": rate, "job": job, "mainnet_locks": locks, "whitepaper": WHITEPAPER}
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
