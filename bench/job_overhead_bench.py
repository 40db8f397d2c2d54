"""Protocol overhead of a job: submitjob -> verified output over real camelidd nodes, against bare Engine.generate.

One regtest network (a miner without models; a client and a compute node, both serving the tiny test model
and gemma-3-270m, so the client verifies with RASTiC itself) runs every case. Per repetition the bench first
times the bare `Engine.generate` for the job's prompt, seed, temperature and max_tokens in this process (the
nodes idle meanwhile), then submits the same job and reads the timeline the nodes record: getjob's history
holds each node's wall-clock time per state, so created -> accepted -> completed -> paid -> delivered ->
verified comes from the protocol itself, not from polling. The dispute window is excluded (the payment's
mining is not waited for). Prints, per case, the medians, the ratio and where the protocol time goes, with
the bare RASTiC verification of the same output for comparison, then one summary line per case. Every case
asks for full RASTiC; gemma's cases at --spot-lengths run again with submitjob's verify="spot", the cheaper
sampled check, to show what the client's verification costs inside the protocol.

    .venv/bin/python -m bench.job_overhead_bench [--repeats 5]    (from the repository root)

The three nodes, this process and whatever else runs share the machine's cores (2 on the project's machine).
The protocol is serial, so the compute node's generation, the client's verification and the bare run never
overlap one another, but other load makes generation times swing from run to run: read the per-repetition
ratio and the ratio implied by the protocol's own steps next to the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.rastic_common import prompts
from camelid.compute.engine import Engine
from camelid.compute.models import default_model_path
from camelid.compute.rastic import DEFAULT_SPOT_K, verify
from tests.functional.framework import TestNode, wait_until
from tests.tiny_model import write_tiny_model

POLL = 0.05
"""Seconds between getjob calls while waiting for the verdict; the timings come from the history, not from this."""
REWARD = "0.01"
"""Coins per job (the compute node stakes as much); above the 0.0002 payment fee."""
COIN_PER_JOB = 1
"""Each job spends a confirmed coin of its own, so no job waits on another's unconfirmed change."""
JOB_TIMEOUT = 120.0
STATES = ("created", "accepted", "completed", "paid", "delivered", "verified")
ENDS = ("verified", "disputed", "slashed")
"""States a client's job stops in once delivered: the verdict is in."""


@dataclass(frozen=True)
class Case:
    """One job shape: a model, its prompt, sampling, output length (chosen so the output runs to max_tokens) and
    the RASTiC mode the client asks submitjob for."""

    label: str
    engine: Engine
    prompt: str
    max_tokens: int
    seed: int
    temperature: float
    verify: str = "full"


@dataclass(frozen=True)
class Run:
    """One repetition: the bare generation and verification here, and the job's timeline on both nodes."""

    generate: float
    verify_full: float
    verify_spot: float
    submitted_at: float
    submit_returned_at: float
    client: dict[str, float]
    compute: dict[str, float]


# The protocol's steps, each the gap between two recorded times: (what, (node, state) -> (node, state)).
STEPS = (
    ("submitjob: escrow tx built, in the mempool", ("bench", "start"), ("client", "created")),
    ("job message relay client->miner->compute", ("client", "created"), ("compute", "created")),
    ("compute: claim delay, escrow tx, accept", ("compute", "created"), ("compute", "accepted")),
    ("compute: generate, commit, stake tx", ("compute", "accepted"), ("compute", "completed")),
    ("testament relay compute->miner->client", ("compute", "completed"), ("client", "completed")),
    ("client: wait for the stake tx, sign payment", ("client", "completed"), ("client", "paid")),
    ("payment relay client->miner->compute", ("client", "paid"), ("compute", "paid")),
    ("compute: check payment, encrypt output", ("compute", "paid"), ("compute", "delivered")),
    ("delivery relay compute->miner->client", ("compute", "delivered"), ("client", "delivered")),
    ("client: decrypt, commitment, RASTiC", ("client", "delivered"), ("client", "verified")),
)


def start_network(basedir: Path, models: list[Path], coins: int) -> tuple[TestNode, TestNode, TestNode]:
    """(miner, client, compute), the latter two serving `models` and each holding `coins` confirmed 1-coin outputs."""
    miner = TestNode(0, basedir)
    miner.start()
    serve = [f"--serve-model={path}" for path in models]
    client = TestNode(1, basedir, [f"--connect=127.0.0.1:{miner.p2p_port}", *serve])
    compute = TestNode(2, basedir, [f"--connect=127.0.0.1:{miner.p2p_port}", *serve])
    client.start()
    compute.start()
    wait_until(lambda: miner.getconnectioncount() == 2, timeout=60, what="client and compute connected to the miner")
    for node in (miner, client, compute):
        node.createwallet("default")
    mine_to = miner.getnewaddress()
    miner.generatetoaddress(100 + coins, mine_to)  # a mature coinbase per send below, and then some
    for node in (client, compute):
        address = node.getnewaddress()
        for _ in range(coins):
            miner.sendtoaddress(address, COIN_PER_JOB)
    miner.generatetoaddress(1, mine_to)
    for node in (client, compute):
        wait_until(lambda node=node: node.getbalance() == coins * COIN_PER_JOB, timeout=60, what="funds confirmed")
    return miner, client, compute


def run_job(case: Case, client: TestNode, compute: TestNode) -> Run:
    """Time the bare generation and verification of `case` here, then the same job over the network."""
    prompt_tokens = case.engine.tokenize(case.prompt)
    began = time.perf_counter()
    output = case.engine.generate(prompt_tokens, case.max_tokens, case.seed, case.temperature)
    generate = time.perf_counter() - began
    sampling = (case.max_tokens, case.seed, case.temperature)
    began = time.perf_counter()
    verify(case.engine, prompt_tokens, output, *sampling, mode="full")
    verify_full = time.perf_counter() - began
    began = time.perf_counter()
    verify(case.engine, prompt_tokens, output, *sampling, mode="spot", nonce=b"bench")
    verify_spot = time.perf_counter() - began

    model = case.engine.model_id.hex()
    submitted_at = time.time()
    job = client.submitjob(
        prompt=case.prompt,
        max_tokens=case.max_tokens,
        model=model,
        seed=case.seed,
        temperature=case.temperature,
        reward=REWARD,
        verify=case.verify,
    )
    submit_returned_at = time.time()
    try:
        info = wait_until(
            lambda: (found := client.getjob(job))["state"] in ENDS and found,
            timeout=JOB_TIMEOUT,
            interval=POLL,
            what=f"the verdict on job {job}",
        )
    except AssertionError as exc:
        states = {node.index: node.getjob(job)["state"] for node in (client, compute)}
        log = compute.debug_log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"{exc}; states by node {states}; the compute node's log ends:\n" + "\n".join(log)) from None
    mine = {entry["state"]: float(entry["time"]) for entry in info["history"]}
    if list(mine) != list(STATES):
        raise SystemExit(f"job {job} took an unexpected path {list(mine)}: {info['verdict']}")
    work = {entry["state"]: float(entry["time"]) for entry in compute.getjob(job)["history"]}
    return Run(generate, verify_full, verify_spot, submitted_at, submit_returned_at, mine, work)


def moment(run: Run, node: str, state: str) -> float:
    if node == "bench":
        return run.submitted_at
    return (run.client if node == "client" else run.compute)[state]


def computing(run: Run) -> float:
    """Seconds the compute node spent from its accept to its testament: tokenize, generate, commit, stake."""
    return run.compute["completed"] - run.compute["accepted"]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def report(case: Case, runs: list[Run]) -> None:
    generate = median_ms([r.generate for r in runs])
    total = median_ms([r.client["verified"] - r.submitted_at for r in runs])
    print(
        f"\n{case.label}: {case.max_tokens} tokens, verify={case.verify}, prompt {case.prompt!r}, seed {case.seed}, "
        f"temperature {case.temperature}; median of {len(runs)}"
    )
    print(f"  bare Engine.generate                        : {generate:9.1f} ms")
    print(f"  submitjob -> verified (client's history)    : {total:9.1f} ms   ratio {total / generate:6.2f}x")
    paired = statistics.median((r.client["verified"] - r.submitted_at) / r.generate for r in runs)
    print(f"  median of the per-repetition ratios         : {paired:9.2f}x  (each job against its own bare run)")
    print(f"  overhead over bare generate                 : {total - generate:9.1f} ms")
    # On a loaded machine generation speed swings from run to run; the protocol's own steps do not, so the
    # ratio they imply (bare generation plus everything but the compute node's generation step) is steadier.
    outside = median_ms([r.client["verified"] - r.submitted_at - computing(r) for r in runs])
    print(
        f"  all but the compute node's generation step  : {outside:9.1f} ms   "
        f"implied ratio {(generate + outside) / generate:6.2f}x"
    )
    print(
        f"  submitjob RPC round trip                    : "
        f"{median_ms([r.submit_returned_at - r.submitted_at for r in runs]):9.1f} ms"
    )
    print("  where the protocol time goes (medians of each step; they need not add up to the median total):")
    for what, (from_node, from_state), (to_node, to_state) in STEPS:
        gap = median_ms([moment(r, to_node, to_state) - moment(r, from_node, from_state) for r in runs])
        print(f"    {what:<44}: {gap:9.1f} ms")
    print(
        f"  for comparison, here: RASTiC full {median_ms([r.verify_full for r in runs]):.1f} ms, "
        f"spot k={DEFAULT_SPOT_K} {median_ms([r.verify_spot for r in runs]):.1f} ms"
    )


def summarize(results: list[tuple[Case, list[Run]]]) -> None:
    """One line per case, so the verify modes and models compare at a glance; ratios are to bare generation."""
    print("\nsummary (medians; ratio = submitjob -> verified over bare Engine.generate)")
    print("  model                tokens verify   bare ms    job ms   ratio  paired implied")
    for case, runs in results:
        generate = median_ms([r.generate for r in runs])
        total = median_ms([r.client["verified"] - r.submitted_at for r in runs])
        paired = statistics.median((r.client["verified"] - r.submitted_at) / r.generate for r in runs)
        outside = median_ms([r.client["verified"] - r.submitted_at - computing(r) for r in runs])
        print(
            f"  {case.label:<20} {case.max_tokens:>6} {case.verify:<6} {generate:9.1f} {total:9.1f} "
            f"{total / generate:6.2f}x {paired:6.2f}x {(generate + outside) / generate:6.2f}x"
        )


def find_case(label: str, engine: Engine, max_tokens: int) -> Case:
    """A prompt (greedy, else sampled) whose output runs the whole max_tokens: the job does the work it asks for."""
    for temperature in (0.0, 0.8):
        for seed in range(3):
            for text in prompts(40):
                output = engine.generate(engine.tokenize(text), max_tokens, seed, temperature)
                if len(output) == max_tokens:
                    return Case(label, engine, text, max_tokens, seed, temperature)
            if temperature == 0.0:
                break  # the seed does not matter for greedy sampling
    raise SystemExit(f"{label}: no prompt runs to {max_tokens} tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed jobs per case, after one warm-up job")
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128])
    parser.add_argument(
        "--spot-lengths", type=int, nargs="*", default=[128], help="gemma lengths also run with verify=spot"
    )
    args = parser.parse_args()
    if args.repeats < 1 or any(n < 1 for n in args.lengths + args.spot_lengths):
        raise SystemExit("--repeats, --lengths and --spot-lengths must be positive")

    with tempfile.TemporaryDirectory() as tmp:
        tiny_path = write_tiny_model(Path(tmp) / "tiny.gguf")
        real_path = default_model_path()
        engines = {"tiny test model": Engine(tiny_path), "gemma-3-270m Q4_K_M": Engine(real_path)}
        cases = [find_case(label, engine, n) for label, engine in engines.items() for n in args.lengths]
        gemma = {case.max_tokens: case for case in cases if case.engine is engines["gemma-3-270m Q4_K_M"]}
        for n in args.spot_lengths:
            full = gemma[n] if n in gemma else find_case("gemma-3-270m Q4_K_M", engines["gemma-3-270m Q4_K_M"], n)
            cases.append(replace(full, verify="spot"))
        jobs = len(cases) * (args.repeats + 1)
        threads = engines["tiny test model"].n_threads
        print(
            f"{os.cpu_count()} cores shared by 3 camelidd processes and this one (and anything else running); "
            f"engine threads {threads} in each; load average {os.getloadavg()[0]:.2f} at the start"
        )
        miner, client, compute = start_network(Path(tmp), [tiny_path, real_path], coins=jobs)
        results = []
        try:
            for case in cases:
                run_job(case, client, compute)  # warm-up: the engine swap when the model changes, first messages
                runs = [run_job(case, client, compute) for _ in range(args.repeats)]
                report(case, runs)
                results.append((case, runs))
        finally:
            for node in (compute, client, miner):
                node.teardown()
            for engine in engines.values():
                engine.close()
    summarize(results)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
