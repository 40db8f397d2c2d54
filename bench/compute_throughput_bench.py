"""Tokens/s of one compute node's llama.cpp worker with 1, 2 and 4 jobs at once (issue 17, batched compute).

A worker started with --compute-slots=S decodes up to S concurrent generations together, one llama_decode
per step for all of them (camelid.compute.engine.Engine.generate_batch). Each concurrency level runs the
same number of distinct jobs through one worker, `concurrency` at a time, and the tokens/s is all output
tokens over the wall time, median over the rounds. All levels run in one process, side by side.

With --calibrate N it also checks that batching costs honest nodes nothing: N jobs generated 4 at a time
are verified one by one with a single-sequence prefill (RASTiC full, another thread count and batch size,
as a client's machine would), and it prints the false rejects and the largest gap against EPS_ACCEPT and
EPS_SLASH.

    python bench/compute_throughput_bench.py [--tokens 64] [--rounds 3] [--calibrate 200] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rastic_common import VERIFIER_CONFIG, prompts  # noqa: E402

from camelid.compute.engine import Engine  # noqa: E402
from camelid.compute.models import default_model_path  # noqa: E402
from camelid.compute.rastic import EPS_ACCEPT, EPS_SLASH, position_gaps  # noqa: E402
from camelid.compute.worker_client import EngineWorker, WorkerSettings  # noqa: E402

LEVELS = (1, 2, 4)


async def tokens_per_second(worker: EngineWorker, jobs: list[tuple[list[int], int, int, float]], at_once: int) -> float:
    """All `jobs` through `worker`, `at_once` concurrent generations at a time: output tokens per second."""
    started = time.perf_counter()
    produced = 0
    for first in range(0, len(jobs), at_once):
        outputs = await asyncio.gather(*(worker.generate(*job) for job in jobs[first : first + at_once]))
        produced += sum(len(output) for output in outputs)
    return produced / (time.perf_counter() - started)


async def throughput(model: Path, tokens: int, rounds: int) -> dict[int, float]:
    worker = await EngineWorker.start(model, WorkerSettings(n_ctx=1024, slots=max(LEVELS)))
    try:
        texts = prompts(max(LEVELS) * 2)
        jobs = [(await worker.tokenize(text), tokens, i, 0.0) for i, text in enumerate(texts)]
        await worker.generate(*jobs[0])  # warm-up: first-call allocations
        medians = {}
        for level in LEVELS:
            rates = [await tokens_per_second(worker, jobs, level) for _ in range(rounds)]
            medians[level] = statistics.median(rates)
            print(f"{level} job(s) at once: {medians[level]:7.1f} tokens/s (median of {rounds}: "
                  + ", ".join(f"{r:.1f}" for r in rates) + ")", flush=True)
    finally:
        await worker.stop()
    return medians


async def calibrate(model: Path, jobs: int, tokens: int) -> None:
    """Generate `jobs` honest outputs 4 at a time, verify each alone; false rejects and the largest gap."""
    worker = await EngineWorker.start(model, WorkerSettings(n_ctx=1024, slots=4))
    texts = prompts(jobs // 2 + jobs % 2)
    try:
        specs = []
        for i in range(jobs):  # every prompt twice: greedy, then sampled at temperature 0.8
            specs.append((await worker.tokenize(texts[i // 2]), tokens, i, 0.0 if i % 2 == 0 else 0.8))
        outputs: list[list[int]] = []
        for first in range(0, jobs, 4):
            outputs += await asyncio.gather(*(worker.generate(*spec) for spec in specs[first : first + 4]))
    finally:
        await worker.stop()
    largest = {0.0: 0.0, 0.8: 0.0}
    rejects = 0
    with Engine(model, n_ctx=1024, **VERIFIER_CONFIG) as verifier:
        for (prompt, _, seed, temperature), output in zip(specs, outputs, strict=True):
            gaps = position_gaps(verifier, prompt, output, range(len(output)), seed, temperature)
            largest[temperature] = max(largest[temperature], float(gaps.max()))
            rejects += int((gaps > EPS_ACCEPT).any())
    print(f"batched generation (4 slots) verified alone: {jobs} jobs of {tokens} tokens, {rejects} false rejects")
    for temperature, gap in largest.items():
        print(f"  largest honest gap at temperature {temperature}: {gap:.3f} "
              f"(EPS_ACCEPT {EPS_ACCEPT}, EPS_SLASH {EPS_SLASH})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibrate", type=int, default=0, metavar="JOBS")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or default_model_path()
    medians = asyncio.run(throughput(model, args.tokens, args.rounds))
    if args.calibrate:
        asyncio.run(calibrate(model, args.calibrate, args.tokens))
    print(f"ratio 4 jobs / 1 job: {medians[4] / medians[1]:.2f}")


if __name__ == "__main__":
    main()
